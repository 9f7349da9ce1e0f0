import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, REPO_ROOT, startNatsServer, type NatsServerHandle } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// A rejection nothing handles, raised inside the gateway process on SIGUSR2 (the preload stands in for a bug).
const PRELOAD = `--import "data:text/javascript,process.on('SIGUSR2', () => void Promise.reject(new Error('planted rejection')))"`;

let nats: NatsServerHandle;
let gateway: ChildProcess;
let url: string;
let output = '';
let exitCode: number | null | undefined;

async function metrics(): Promise<string> {
  return (await fetch(`${url}/metrics`)).text();
}

beforeAll(async () => {
  nats = await startNatsServer();
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  gateway = spawn(process.execPath, ['--import', 'tsx', 'apps/gateway/src/main.ts', '--nats', nats.url, '--port', String(port)], {
    cwd: REPO_ROOT,
    env: { ...process.env, NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} ${PRELOAD}`, LOG_LEVEL: 'error' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const collect = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-20_000));
  gateway.stdout?.on('data', collect);
  gateway.stderr?.on('data', collect);
  gateway.once('exit', (code) => (exitCode = code));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && exitCode === undefined) {
    if (await metrics().then(() => true, () => false)) return;
    await sleep(100);
  }
  throw new Error(`gateway did not serve /metrics:\n${output}`);
}, 40_000);

afterAll(async () => {
  if (gateway && exitCode === undefined) {
    const exited = new Promise((resolve) => gateway.once('exit', resolve));
    gateway.kill('SIGTERM');
    await exited;
  }
  await nats?.stop();
});

describe('an unhandled rejection in the gateway', () => {
  it('is logged and counted, and the gateway keeps serving', async () => {
    expect(await metrics()).toMatch(/^virtbus_gateway_unhandled_rejections_total 0$/m);
    process.kill(gateway.pid!, 'SIGUSR2');
    const deadline = Date.now() + 10_000;
    while (!(/^virtbus_gateway_unhandled_rejections_total 1$/m.test(await metrics()) && output.includes('planted rejection')) && Date.now() < deadline && exitCode === undefined) await sleep(100);
    expect(exitCode, output).toBeUndefined();
    expect(await metrics()).toMatch(/^virtbus_gateway_unhandled_rejections_total 1$/m);
    expect(output).toContain('planted rejection');
    expect((await fetch(`${url}/v1/nodes`)).status).toBe(200);
  });
});

import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, spawnAgent, startNatsServer, tearDown, type AgentProcess, type NatsServerHandle } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let nats: NatsServerHandle | undefined;
let agent: AgentProcess | undefined;
let workDir: string;
let port: number;

const get = async (path: string) => {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, text: await response.text() };
};

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'virtbus-health-'));
  nats = await startNatsServer();
  port = await freePort();
  agent = await spawnAgent({ node: 'health', natsUrl: nats.url, stateDir: join(workDir, 'state'), extraArgs: ['--metrics-address', `127.0.0.1:${port}`] });
});

afterAll(async () => {
  await tearDown(agent, nats, workDir);
});

describe('agent /healthz and /readyz (on the metrics listener)', () => {
  it('is ready with the bus and its event stream, not ready without the bus, alive all the while', async () => {
    expect(await get('/healthz')).toEqual({ status: 200, text: 'ok\n' });
    expect(await get('/readyz')).toEqual({ status: 200, text: 'ready\n' });
    await nats!.stop();
    nats = undefined;
    let readyz = await get('/readyz');
    // bounded: the agent notices a lost server within a few seconds
    for (const deadline = Date.now() + 30_000; readyz.status === 200 && Date.now() < deadline; readyz = await get('/readyz')) await new Promise((resolve) => setTimeout(resolve, 200));
    expect(readyz.status).toBe(503);
    expect(readyz.text).toMatch(/^not ready: event stream VIRT_EVENTS unreachable: /);
    expect((await get('/healthz')).status).toBe(200);
  });
});

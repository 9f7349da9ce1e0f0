import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startGateway } from '@virtbus/gateway';
import { spawnAgent, startNatsServer, type AgentProcess, type NatsServerHandle } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../src/main.js';

let nats: NatsServerHandle;
let nc: NatsConnection;
const agents: AgentProcess[] = [];
let gateway: Awaited<ReturnType<typeof startGateway>>;
let workDir: string;

async function cli(...args: string[]): Promise<{ code: number; text: string }> {
  const lines: string[] = [];
  const code = await run(['--url', gateway.url, ...args], (text) => lines.push(text));
  return { code, text: lines.join('\n') };
}

beforeAll(async () => {
  nats = await startNatsServer();
  workDir = await mkdtemp(join(tmpdir(), 'virtbus-cli-migrate-'));
  nc = await connect({ servers: nats.url });
  agents.push(...(await Promise.all(['ma', 'mb'].map((node) => spawnAgent({ node, natsUrl: nats.url, stateDir: join(workDir, node) })))));
  gateway = await startGateway({ nc, host: '127.0.0.1', port: 0, discoveryWaitMs: 300 });
});

afterAll(async () => {
  await gateway?.close();
  for (const agent of agents) await agent.stop();
  await nc?.close();
  await nats?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe('virtbus migrate through the gateway (test driver: offline only)', () => {
  it('moves a definition offline and undefines the source', async () => {
    expect((await cli('--node', 'ma', 'define', '--name', 'wanderer', '--driver', 'test')).code).toBe(0);
    const moved = await cli('--node', 'ma', 'migrate', 'wanderer', 'mb', '--offline', '--undefine-source');
    expect(moved.code).toBe(0);
    expect(moved.text).toBe("Domain 'wanderer' migrated from ma to mb");
    expect((await cli('--node', 'mb', 'list', '--all')).text).toMatch(/wanderer\s+shutoff\s+test/);
    expect((await cli('--node', 'ma', 'list', '--all')).text).not.toContain('wanderer');
  });

  it('refuses a live migration the driver cannot do, and a second copy on the destination', async () => {
    await cli('--node', 'mb', 'start', 'wanderer');
    const response = await fetch(`${gateway.url}/v1/nodes/mb/domains/wanderer/migrate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ destination: 'ma' }),
    });
    expect(response.status).toBe(501);
    expect(((await response.json()) as { code: string }).code).toBe('OPERATION_UNSUPPORTED');
    expect((await cli('--node', 'ma', 'define', '--name', 'wanderer', '--driver', 'test')).code).toBe(0);
    const again = await fetch(`${gateway.url}/v1/nodes/mb/domains/wanderer/migrate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ destination: 'ma', offline: true }),
    });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { message: string }).message).toMatch(/another domain named wanderer/);
  });
});

import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { type AgentProcess, type NatsServerHandle, spawnAgent, startNatsServer, tearDown } from '@virtbus/testing';
import { startGateway, type RunningGateway } from '../src/index.js';

const NODE = 'idem1';
let nats: NatsServerHandle;
let nc: NatsConnection;
let workDir: string;
let agent: AgentProcess;
let gateway: RunningGateway;

async function api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${gateway.url}${path}`, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function eventually<T>(check: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let attempt = 0; attempt < 300; attempt++) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
  workDir = await mkdtemp(join(tmpdir(), 'virtbus-idem-'));
  agent = await spawnAgent({ node: NODE, natsUrl: nats.url, stateDir: join(workDir, NODE), drivers: 'test' });
  // short bus timeout: the define below times out at the gateway while the agent is stopped
  gateway = await startGateway({ nc, port: 0, requestTimeoutMs: 500 });
});

afterAll(() => tearDown(gateway, agent, nc, nats, workDir));

describe('Idempotency-Key', () => {
  it('answers the retry of a define that timed out but ran later with the first result, across an agent restart', async () => {
    const key = randomUUID();
    const define = { name: 'idem-web', driver: 'test' };
    process.kill(agent.pid, 'SIGSTOP');
    let first: Awaited<ReturnType<typeof api>>;
    try {
      first = await api('POST', `/v1/nodes/${NODE}/domains`, define, { 'idempotency-key': key });
    } finally {
      process.kill(agent.pid, 'SIGCONT');
    }
    expect(first.status).toBe(504);
    // the stopped agent ran the define once it went on
    const defined = await eventually(async () => {
      const got = await api('GET', `/v1/nodes/${NODE}/domains/idem-web`);
      return got.status === 200 ? got.body : undefined;
    }, 'the late define');

    const retry = await api('POST', `/v1/nodes/${NODE}/domains`, define, { 'idempotency-key': key });
    expect(retry.status).toBe(201);
    expect(retry.body['uuid']).toBe(defined['uuid']);

    const other = await api('POST', `/v1/nodes/${NODE}/domains`, { ...define, name: 'idem-other' }, { 'idempotency-key': key });
    expect(other.status).toBe(422);
    expect(other.body).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });

    const withoutKey = await api('POST', `/v1/nodes/${NODE}/domains`, define);
    expect(withoutKey.body).toMatchObject({ code: 'DOMAIN_EXISTS' });

    await agent.stop();
    agent = await spawnAgent({ node: NODE, natsUrl: nats.url, stateDir: join(workDir, NODE), drivers: 'test' });
    const afterRestart = await api('POST', `/v1/nodes/${NODE}/domains`, define, { 'idempotency-key': key });
    expect(afterRestart.status).toBe(201);
    expect(afterRestart.body['uuid']).toBe(defined['uuid']);
    const list = await api('GET', `/v1/nodes/${NODE}/domains`);
    expect((list.body['domains'] as { name: string }[]).filter((domain) => domain.name === 'idem-web')).toHaveLength(1);
  });

  it('refuses a malformed key with 400', async () => {
    const response = await api('POST', `/v1/nodes/${NODE}/domains`, { name: 'bad-key', driver: 'test' }, { 'idempotency-key': 'has space' });
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({ code: 'INVALID_ARG' });
  });
});

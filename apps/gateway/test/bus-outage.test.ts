import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type AgentProcess, hasBinaryOrSkip, type NatsServerHandle, spawnAgent, startNatsServer, tearDown } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../src/index.js';

describe.runIf(hasBinaryOrSkip('nats-server'))('gateway while its NATS server is down', () => {
  let dir: string;
  let nats: NatsServerHandle;
  let agent: AgentProcess;
  let gateway: RunningGateway;

  async function get(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await fetch(`${gateway.url}${path}`);
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  /** Polls until the response has the status (the bus reconnects on its own schedule). */
  async function until(path: string, status: number, timeoutMs = 30_000): Promise<{ status: number; body: Record<string, unknown> }> {
    const deadline = Date.now() + timeoutMs;
    let last = await get(path);
    while (last.status !== status && Date.now() < deadline) {
      await sleep(100);
      last = await get(path);
    }
    return last;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtbus-outage-'));
    nats = await startNatsServer({ storeDir: join(dir, 'js') });
    agent = await spawnAgent({ node: 'alpha', natsUrl: nats.url, stateDir: join(dir, 'alpha') });
    // the gateway owns its connection, as in production
    gateway = await startGateway({ natsUrl: nats.url, host: '127.0.0.1', port: 0 });
  });

  afterAll(() => tearDown(gateway, agent, nats, dir));

  it('is ready with the bus, fails fast with 503 BUS_UNAVAILABLE without it, and recovers when it returns', async () => {
    expect(await get('/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
    expect(await get('/readyz')).toMatchObject({ status: 200, body: { status: 'ready', bus: 'connected' } });

    await nats.stop();
    const notReady = await until('/readyz', 503);
    expect(notReady).toMatchObject({ status: 503, body: { code: 'BUS_UNAVAILABLE', bus: 'disconnected' } });
    expect(await get('/healthz')).toMatchObject({ status: 200 });
    expect(await get('/v1/nodes/alpha')).toMatchObject({ status: 503, body: { code: 'BUS_UNAVAILABLE' } });
    expect(await get('/v1/nodes')).toMatchObject({ status: 503, body: { code: 'BUS_UNAVAILABLE' } });
    expect(await get('/v1/events')).toMatchObject({ status: 503, body: { code: 'BUS_UNAVAILABLE' } });

    nats = await startNatsServer({ port: nats.port, storeDir: join(dir, 'js') });
    expect(await until('/readyz', 200)).toMatchObject({ status: 200, body: { status: 'ready' } });
    expect(await until('/v1/nodes/alpha', 200)).toMatchObject({ status: 200, body: { node: 'alpha' } });
    const nodes = await get('/v1/nodes');
    expect(nodes.status).toBe(200);
    expect(nodes.body['nodes']).toEqual([expect.objectContaining({ node: 'alpha', online: true })]);
  });
});

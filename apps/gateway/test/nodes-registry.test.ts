import { setTimeout as sleep } from 'node:timers/promises';
import { Kvm, type KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { NODES_BUCKET, type NodeList, type NodeRecord } from '@virtbus/api-contract';
import { hasBinaryOrSkip, type NatsServerHandle, startNatsServer, tearDown } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type GatewayApp } from '../src/index.js';
import { startFakeAgent, type FakeAgent } from './fake-agent.js';

const NODE_COUNT = 25;
const names = Array.from({ length: NODE_COUNT }, (_, index) => `n${String(index).padStart(3, '0')}`);

describe.runIf(hasBinaryOrSkip('nats-server'))('GET /v1/nodes from the node registry', () => {
  let server: NatsServerHandle;
  let nc: NatsConnection;
  let spy: NatsConnection;
  let kv: KV;
  let app: GatewayApp;
  let agent: FakeAgent;
  const serviceRequests: string[] = [];

  const record = (node: string, extra: Partial<NodeRecord> = {}): string =>
    JSON.stringify({ node, version: '1.2.3', registeredAt: new Date().toISOString(), startedAt: '2026-01-01T00:00:00.000Z', heartbeatIntervalMs: 60_000, drivers: ['test'], domains: { total: 2, running: 1 }, ...extra });

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
    spy = await connect({ servers: server.url });
    spy.subscribe('$SRV.>', { callback: (_error, msg) => void serviceRequests.push(msg.subject) });
    await spy.flush();
    kv = await new Kvm(nc).create(NODES_BUCKET, { history: 1 });
    for (const node of names) await kv.put(node, record(node));
    // a live agent that answers service discovery only after 300 ms: the old fan-out listed it offline
    agent = await startFakeAgent(nc, 'slowpoke');
    app = await buildApp({ nc, discoveryWaitMs: 5000 });
  });

  afterAll(() => tearDown(app, agent, spy, nc, server));

  it('answers from the registry without asking any agent, with each node summary', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/nodes' });
    expect(response.statusCode).toBe(200);
    const list = response.json() as NodeList;
    expect(list.nodes.map((node) => node.node)).toEqual([...names, 'slowpoke']);
    expect(list.nodes.every((node) => node.online)).toBe(true);
    expect(list.nodes[0]).toMatchObject({ node: 'n000', version: '1.2.3', online: true, startedAt: '2026-01-01T00:00:00.000Z', drivers: ['test'], domains: { total: 2, running: 1 } });
    expect(Date.parse(list.nodes[0]!.lastHeartbeat!)).toBeGreaterThan(0);
    expect(list.nodes.at(-1)!.id).toBe(agent.serviceId);
    expect(list.onlineWithinSeconds).toBe(15);
    expect(list.continue).toBeUndefined();
    await spy.flush();
    expect(serviceRequests).toEqual([]);
  });

  it('pages with limit and continue in name order', async () => {
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const response = await app.inject({ method: 'GET', url: `/v1/nodes?limit=10${token ? `&continue=${token}` : ''}` });
      expect(response.statusCode).toBe(200);
      const page = response.json() as NodeList;
      seen.push(...page.nodes.map((node) => node.node));
      if (page.continue) expect(page.remaining).toBe(NODE_COUNT + 1 - seen.length);
      token = page.continue;
      pages++;
    } while (token);
    expect(pages).toBe(3);
    expect(seen).toEqual([...names, 'slowpoke']);
    expect((await app.inject({ method: 'GET', url: '/v1/nodes?limit=0' })).json()).toMatchObject({ code: 'INVALID_ARG' });
    expect((await app.inject({ method: 'GET', url: '/v1/nodes?continue=not-a-token' })).json()).toMatchObject({ code: 'INVALID_ARG' });
  });

  it('lists a node offline once it stopped cleanly, its heartbeat is stale, or a call found no responder', async () => {
    await kv.put('n001', record('n001', { stoppedAt: new Date().toISOString() }));
    // a 1 ms interval makes the online bound max(15 s, 3 ms): a beat from 15 s ago is stale in any case, so use a short-bound gateway
    const strict = await buildApp({ nc, discoveryWaitMs: 5000, onlineWithinMs: 1 });
    try {
      await kv.put('n002', record('n002', { heartbeatIntervalMs: 1 }));
      await sleep(50);
      const byNode = new Map((((await strict.inject({ method: 'GET', url: '/v1/nodes' })).json() as NodeList).nodes).map((node) => [node.node, node.online]));
      expect(byNode.get('n002')).toBe(false);
    } finally {
      await strict.close();
    }
    await agent.stop();
    const down = await app.inject({ method: 'GET', url: '/v1/nodes/slowpoke' });
    expect(down.json()).toMatchObject({ code: 'AGENT_UNREACHABLE' });
    const byNode = new Map((((await app.inject({ method: 'GET', url: '/v1/nodes' })).json() as NodeList).nodes).map((node) => [node.node, node.online]));
    expect(byNode.get('n001')).toBe(false);
    expect(byNode.get('slowpoke')).toBe(false);
    expect(byNode.get('n000')).toBe(true);
  });
});

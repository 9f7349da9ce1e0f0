import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { compareKeys, NODES_BUCKET, type Domain, type FleetDomain, type FleetDomainList } from '@virtbus/api-contract';
import { createToken } from '@virtbus/security';
import { spawnAgent, startNatsServer, type AgentProcess, type NatsServerHandle, tearDown } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../src/index.js';

const NODES = ['n1', 'n2', 'n3'];
const admin = createToken({ name: 'root', role: 'admin' });
const onlyN2 = createToken({ name: 'viewer-n2', role: 'read-only', nodes: ['n2'] });

let nats: NatsServerHandle;
let gateway: RunningGateway;
let nc: NatsConnection;
let workDir: string;
const agents: AgentProcess[] = [];

async function api(method: string, path: string, body?: unknown, token: string | undefined = admin.token) {
  const response = await fetch(`${gateway.url}${path}`, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

/** Every page of GET /v1/domains with the query, following continue tokens. */
async function fleet(query: Record<string, string> = {}, token: string = admin.token): Promise<{ domains: FleetDomain[]; pages: FleetDomainList[] }> {
  const pages: FleetDomainList[] = [];
  let next: string | undefined;
  do {
    const params = new URLSearchParams({ ...query, ...(next ? { continue: next } : {}) });
    const reply = await api('GET', `/v1/domains?${params}`, undefined, token);
    expect(reply.status, JSON.stringify(reply.body)).toBe(200);
    const page = reply.body as unknown as FleetDomainList;
    pages.push(page);
    next = page.continue;
  } while (next);
  return { domains: pages.flatMap((page) => page.domains), pages };
}

/** Polls the fleet list until `check` holds (the index follows events asynchronously); fails after the deadline. */
async function fleetUntil(query: Record<string, string>, check: (domains: FleetDomain[], stale: string[]) => boolean, what: string): Promise<FleetDomain[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const { domains, pages } = await fleet(query);
    const stale = pages.flatMap((page) => page.stale ?? []);
    if (check(domains, stale)) return domains;
    if (Date.now() > deadline) throw new Error(`fleet list never showed ${what}: ${JSON.stringify({ domains: domains.map((d) => [d.node, d.name, d.state]), stale })}`);
    await sleep(100);
  }
}

async function define(node: string, name: string, tier: string): Promise<Domain> {
  const created = await api('POST', `/v1/nodes/${node}/domains`, { name, driver: 'test', vcpus: 1, memory: 64, labels: { tier, home: node } });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return created.body as unknown as Domain;
}

beforeAll(async () => {
  nats = await startNatsServer();
  workDir = await mkdtemp(join(tmpdir(), 'virtbus-fleet-'));
  nc = await connect({ servers: nats.url });
  for (const node of NODES) agents.push(await spawnAgent({ node, natsUrl: nats.url, stateDir: join(workDir, node) }));
  gateway = await startGateway({ nc, host: '127.0.0.1', port: 0, discoveryWaitMs: 500, security: { tokens: [admin.record, onlyN2.record] } });
});

afterAll(() => tearDown(gateway, agents, nc, nats, workDir));

describe('GET /v1/domains: the fleet index over three agents', () => {
  it('pages through the domains of every node exactly once, in (node, name, uuid) order, listed first and then followed by events', async () => {
    // two per node exist before the index starts (its first list), two more are defined after (its events)
    for (const node of NODES) {
      await define(node, 'web-1', 'web');
      await define(node, 'db-1', 'db');
    }
    await fleetUntil({}, (domains, stale) => domains.length === 6 && stale.length === 0, 'the 6 domains of the first lists');
    for (const node of NODES) {
      await define(node, 'web-2', 'web');
      await define(node, 'db-2', 'db');
    }
    await fleetUntil({}, (domains, stale) => domains.length === 12 && stale.length === 0, 'all 12 domains with no stale node');

    const { domains, pages } = await fleet({ limit: '5' });
    expect(pages.map((page) => page.domains.length)).toEqual([5, 5, 2]);
    expect(pages[0]!.remaining).toBe(7);
    expect(new Set(domains.map((d) => d.uuid)).size).toBe(12);
    const keys = domains.map((d) => [d.node, d.name, d.uuid]);
    expect([...keys].sort(compareKeys)).toEqual(keys);
    expect(domains.map((d) => `${d.node}/${d.name}`)).toEqual(NODES.flatMap((node) => ['db-1', 'db-2', 'web-1', 'web-2'].map((name) => `${node}/${name}`)));
    for (const page of pages) expect(Date.parse(page.asOf)).not.toBeNaN();

    // the same summaries the per-node lists give
    for (const node of NODES) {
      const list = (await api('GET', `/v1/nodes/${node}/domains`)).body as unknown as { domains: Domain[] };
      expect(domains.filter((d) => d.node === node)).toEqual(
        list.domains.map((d) => ({ node, uuid: d.uuid, name: d.name, driver: d.driver, state: d.state, reason: d.reason, labels: d.config.labels, stateChangedAt: d.stateChangedAt })),
      );
    }
  });

  it('filters by state, driver, prefix and label selector like the per-node list', async () => {
    expect((await fleet({ labelSelector: 'tier=db' })).domains.map((d) => `${d.node}/${d.name}`)).toEqual(NODES.flatMap((node) => [`${node}/db-1`, `${node}/db-2`]));
    expect((await fleet({ labelSelector: 'tier=web,home in (n1,n3)' })).domains.map((d) => `${d.node}/${d.name}`)).toEqual(['n1/web-1', 'n1/web-2', 'n3/web-1', 'n3/web-2']);
    expect((await fleet({ prefix: 'web-2' })).domains.map((d) => d.node)).toEqual(NODES);
    expect((await fleet({ driver: 'test' })).domains).toHaveLength(12);
    expect((await fleet({ driver: 'qemu' })).domains).toEqual([]);
    expect((await fleet({ state: 'shutoff', limit: '2' })).domains).toHaveLength(12);
    expect((await api('GET', '/v1/domains?state=sideways')).status).toBe(400);
    expect((await api('GET', '/v1/domains?continue=not-ours')).status).toBe(400);
    expect((await api('GET', '/v1/domains?labelSelector=%3D%3D')).status).toBe(400);
  });

  it('shows a state change, a new label set and an undefine on one node within a bound', async () => {
    expect((await api('PUT', '/v1/nodes/n2/domains/web-1/state', { action: 'start' })).status).toBe(200);
    const running = await fleetUntil({ state: 'running' }, (domains) => domains.length === 1, 'n2/web-1 running');
    expect(running[0]).toMatchObject({ node: 'n2', name: 'web-1', state: 'running', labels: { tier: 'web', home: 'n2' } });

    expect((await api('PUT', '/v1/nodes/n3/domains/db-2', { labels: { tier: 'cache' } })).status).toBe(200);
    await fleetUntil({ labelSelector: 'tier=cache' }, (domains) => domains.length === 1 && domains[0]!.node === 'n3', 'n3/db-2 relabelled');

    expect((await api('DELETE', '/v1/nodes/n1/domains/db-1')).status).toBe(200);
    await fleetUntil({}, (domains) => domains.length === 11 && !domains.some((d) => d.node === 'n1' && d.name === 'db-1'), 'n1/db-1 gone');
  });

  it('shows a node-limited caller only its nodes, and nothing without credentials', async () => {
    const { domains } = await fleet({}, onlyN2.token);
    expect(domains.length).toBe(4);
    expect(new Set(domains.map((d) => d.node))).toEqual(new Set(['n2']));
    expect((await api('GET', '/v1/domains', undefined, '')).status).toBe(401);
  });

  it('drops the domains of a node that leaves the registry', async () => {
    const kv = await new Kvm(nc).open(NODES_BUCKET);
    const n3 = agents[2]!;
    await n3.stop();
    await kv.delete('n3');
    await fleetUntil({}, (domains) => !domains.some((d) => d.node === 'n3'), 'n3 dropped');
  });
});

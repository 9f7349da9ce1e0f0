import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { generateSecurityBundle, natsConnectionOptions, renderNatsServerConfig, type NatsClientConfig, type SecurityBundle } from '@virtbus/security';
import { EVENTS_STREAM, IDEMPOTENCY_HEADER, NODES_BUCKET, sseMessages, type FleetDomainList, type LifecycleEvent, type NodeList } from '@virtbus/api-contract';
import { RECONNECT_FOREVER } from '@virtbus/client';
import { freePort, hasBinaryOrSkip, spawnAgent, startNatsServer, storedNodeEvents, type AgentProcess, type NatsServerHandle } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../src/index.js';

const NODES = ['n1', 'n2', 'n3'] as const;
/** How long each killed server stays down (issue #14: 60 s, longer than nats.js' default reconnect attempts). */
const OUTAGE_MS = 60_000;

interface ClusterServer {
  index: number;
  clientPort: number;
  routePort: number;
  httpPort: number;
  storeDir: string;
  handle: NatsServerHandle;
}

/** An open SSE stream that keeps every event it receives, until closed. */
interface EventTap {
  readonly events: { id: number; event: LifecycleEvent }[];
  readonly errors: string[];
  close(): void;
}

describe.runIf(hasBinaryOrSkip('nats-server') && hasBinaryOrSkip('openssl'))('fleet in a box: three nats-servers over TLS, three agents, one gateway', () => {
  let dir: string;
  const servers: ClusterServer[] = [];
  const agents = new Map<string, AgentProcess>();
  let gateway: RunningGateway;
  let nc: NatsConnection;
  let tap: EventTap;
  let lateTap: EventTap;
  let gatewayNc: NatsConnection | undefined;
  let bundle: SecurityBundle;

  /** Connection settings of one of the bundle's bus identities (TLS client certificate, own inbox prefix). */
  function identity(name: string, url: string): NatsClientConfig {
    const found = bundle.identities.find((candidate) => candidate.name === name);
    if (!found) throw new Error(`no identity ${name}`);
    return { url, ca: bundle.ca.cert, cert: found.files.cert, key: found.files.key, inboxPrefix: `_INBOX.${name}` };
  }

  // clients and routes over TLS with the generated certificates and per-identity permissions, as deployed
  const config = (server: Omit<ClusterServer, 'handle'>, all: Omit<ClusterServer, 'handle'>[]) => {
    const routes = all.filter((other) => other.index !== server.index).map((other) => `nats-route://127.0.0.1:${other.routePort}`);
    const cluster = renderNatsServerConfig({ tls: bundle.tls, users: bundle.users, serverName: `nats-${server.index}`, cluster: { name: 'fleet', listen: `127.0.0.1:${server.routePort}`, routes } });
    return `${cluster}\nhttp: "127.0.0.1:${server.httpPort}"`;
  };
  const start = (server: Omit<ClusterServer, 'handle'>, all: Omit<ClusterServer, 'handle'>[]) =>
    startNatsServer({ port: server.clientPort, storeDir: server.storeDir, config: config(server, all) });

  async function api(method: string, path: string, body?: unknown, idempotencyKey?: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await fetch(`${gateway.url}${path}`, {
      method,
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...(idempotencyKey ? { [IDEMPOTENCY_HEADER]: idempotencyKey } : {}) } }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  /** Retries while the bus fails over (a node's agent or the gateway reconnecting answers 503 for a moment); a write repeats with its idempotency key. */
  async function apiEventually(method: string, path: string, body: unknown, status: number): Promise<Record<string, unknown>> {
    const deadline = Date.now() + 30_000;
    const key = randomUUID();
    let last = await api(method, path, body, key);
    while (last.status !== status && [503, 504].includes(last.status) && Date.now() < deadline) {
      await sleep(200);
      last = await api(method, path, body, key);
    }
    expect(last, `${method} ${path}`).toMatchObject({ status });
    return last.body;
  }

  /** The server a named client connection is on, from the servers' monitoring endpoints. */
  async function serverOf(connectionName: string): Promise<ClusterServer> {
    for (const server of servers) {
      // a killed server has no monitoring endpoint: it holds no connection
      const connz = (await fetch(`http://127.0.0.1:${server.httpPort}/connz?limit=1024`).then(
        (response) => response.json(),
        () => ({}),
      )) as { connections?: { name?: string }[] };
      if (connz.connections?.some((connection) => connection.name === connectionName)) return server;
    }
    throw new Error(`no server has a connection named ${connectionName}`);
  }

  function openTap(path: string): EventTap {
    const controller = new AbortController();
    const events: EventTap['events'] = [];
    const errors: string[] = [];
    void (async () => {
      const response = await fetch(`${gateway.url}${path}`, { signal: controller.signal });
      if (response.status !== 200) throw new Error(`GET ${path} answered ${response.status}: ${await response.text()}`);
      for await (const { id, event, data } of sseMessages(response.body as unknown as AsyncIterable<Uint8Array>)) {
        if (event === 'error') errors.push(data ?? 'an error event without data');
        else if (id && data) events.push({ id: Number(id), event: JSON.parse(data) as LifecycleEvent });
      }
    })().catch((error: unknown) => {
      if ((error as Error).name !== 'AbortError') errors.push(String(error));
    });
    return { events, errors, close: () => controller.abort() };
  }

  /** The node's domain lifecycle events the tap has seen, once there are `count` (or the wait ran out). */
  async function eventsOf(node: string, count: number, timeoutMs = 30_000): Promise<LifecycleEvent[]> {
    const mine = () => tap.events.filter((item) => item.event.node === node && item.event.kind === 'domain.lifecycle').map((item) => item.event);
    const deadline = Date.now() + timeoutMs;
    while (mine().length < count && tap.errors.length === 0 && Date.now() < deadline) await sleep(100);
    return mine();
  }

  async function lifecycle(node: string, name: string, actions: readonly string[]): Promise<void> {
    await apiEventually('POST', `/v1/nodes/${node}/domains`, { name, driver: 'test', vcpus: 1, memory: 64 }, 201);
    for (const action of actions) await apiEventually('PUT', `/v1/nodes/${node}/domains/${name}/state`, { action }, 200);
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtbus-fleet-'));
    bundle = await generateSecurityBundle({ outDir: join(dir, 'security'), nodes: [...NODES] });
    const plans = await Promise.all(
      [0, 1, 2].map(async (index) => ({ index, clientPort: await freePort(), routePort: await freePort(), httpPort: await freePort(), storeDir: join(dir, `js-${index}`) })),
    );
    for (const plan of plans) servers.push({ ...plan, handle: await start(plan, plans) });
    const urls = servers.map((server) => `tls://127.0.0.1:${server.clientPort}`);
    const readyConnection = natsConnectionOptions(identity('admin', urls.join(',')));
    // every agent gets all three URLs and its own identity; each starts while the cluster may still be electing its meta leader
    const started = await Promise.allSettled(
      NODES.map((node) => {
        const own = identity(`agent-${node}`, urls.join(','));
        const env = { NATS_CA: own.ca!, NATS_CERT: own.cert!, NATS_KEY: own.key!, NATS_INBOX_PREFIX: own.inboxPrefix! };
        return spawnAgent({ node, natsUrl: urls.join(','), stateDir: join(dir, node), env, readyConnection, extraArgs: ['--heartbeat-interval', '1'] });
      }),
    );
    // agents that did start are stopped in afterAll even when another one failed
    for (const result of started) if (result.status === 'fulfilled') agents.set(result.value.node, result.value);
    const failed = started.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
    nc = await connect(readyConnection);
  });

  afterAll(async () => {
    tap?.close();
    lateTap?.close();
    await gateway?.close();
    await gatewayNc?.close();
    await Promise.all([...agents.values()].map((agent) => agent.stop()));
    await nc?.close();
    await Promise.all(servers.map((server) => server.handle.stop()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Waits until the restarted server answers JetStream and every replica of the events stream is current again. */
  async function expectRejoined(server: ClusterServer): Promise<void> {
    const back = await connect(natsConnectionOptions(identity('admin', `tls://127.0.0.1:${server.clientPort}`)));
    try {
      const deadline = Date.now() + 60_000;
      let peers: { name: string; current: boolean }[] = [];
      while (Date.now() < deadline) {
        // the rejoining server answers JetStream only once it caught up with the meta group
        const info = await jetstreamManager(back)
          .then((manager) => manager.streams.info(EVENTS_STREAM))
          .catch(() => undefined);
        peers = [...(info?.cluster?.leader ? [{ name: info.cluster.leader, current: true }] : []), ...(info?.cluster?.replicas ?? [])];
        if (peers.length === 3 && peers.every((peer) => peer.current)) break;
        await sleep(200);
      }
      expect(peers.map((peer) => peer.name).sort()).toEqual(['nats-0', 'nats-1', 'nats-2']);
      expect(peers.every((peer) => peer.current)).toBe(true);
    } finally {
      await back.close();
    }
  }

  /** Every node listed online by GET /v1/nodes. */
  async function expectNodesListed(eventually: boolean): Promise<void> {
    const listed = eventually ? { status: 200, body: await apiEventually('GET', '/v1/nodes', undefined, 200) } : await api('GET', '/v1/nodes');
    expect(listed.status).toBe(200);
    expect((listed.body as unknown as NodeList).nodes.map((node) => [node.node, node.online])).toEqual(NODES.map((node) => [node, true]));
  }

  /** GET /v1/domains answers, and shows each `node/name` in its state within a bound (the index follows events). */
  async function expectFleetDomains(states: Record<string, string>, eventually: boolean): Promise<void> {
    const deadline = Date.now() + 20_000;
    let shown: Record<string, string> = {};
    for (;;) {
      const listed = eventually ? { status: 200, body: await apiEventually('GET', '/v1/domains', undefined, 200) } : await api('GET', '/v1/domains');
      expect(listed.status).toBe(200);
      shown = Object.fromEntries((listed.body as unknown as FleetDomainList).domains.map((domain) => [`${domain.node}/${domain.name}`, domain.state]));
      if (Object.entries(states).every(([key, state]) => shown[key] === state) || Date.now() > deadline) break;
      await sleep(250);
    }
    expect(shown).toMatchObject(states);
  }

  /**
   * kill -9 of one server for OUTAGE_MS: `first` runs at once (calls on every node), then until the server comes back
   * the node and fleet lists are asked every 2 s and each node's `toggled` domain is suspended and resumed, so events
   * keep flowing through the outage. `fromGateway`: the gateway's own server, so its first answers may be 503 while it
   * reconnects. Ends once the restarted server has rejoined.
   */
  async function outage(server: ClusterServer, toggled: string, fromGateway: boolean, first: () => Promise<void>): Promise<void> {
    const killedAt = Date.now();
    process.kill(server.handle.pid, 'SIGKILL');
    await server.handle.stop();
    await first();
    await expectNodesListed(fromGateway);
    const states = Object.fromEntries(NODES.map((node) => [`${node}/${toggled}`, 'running']));
    await expectFleetDomains(states, fromGateway);
    let suspended = false;
    while (Date.now() - killedAt < OUTAGE_MS) {
      await Promise.all(NODES.map((node) => apiEventually('PUT', `/v1/nodes/${node}/domains/${toggled}/state`, { action: suspended ? 'resume' : 'suspend' }, 200)));
      suspended = !suspended;
      await expectNodesListed(false);
      await expectFleetDomains(Object.fromEntries(Object.keys(states).map((key) => [key, suspended ? 'paused' : 'running'])), false);
      await sleep(Math.min(2000, Math.max(0, OUTAGE_MS - (Date.now() - killedAt))));
    }
    if (suspended) await Promise.all(NODES.map((node) => apiEventually('PUT', `/v1/nodes/${node}/domains/${toggled}/state`, { action: 'resume' }, 200)));
    // the server comes back with its store and rejoins the cluster: the stream has three current replicas again
    server.handle = await start(server, servers);
    await expectRejoined(server);
  }

  it(
    'keeps the stream and the registry on three servers, serves every node, and survives losing a node\'s server and then the gateway\'s for 60 s each',
    async () => {
      const jsm = await jetstreamManager(nc);
      expect((await jsm.streams.info(EVENTS_STREAM)).config.num_replicas).toBe(3);
      expect((await jsm.streams.info(`KV_${NODES_BUCKET}`)).config.num_replicas).toBe(3);

      // the server n1 is on dies first; the gateway sits on another (tried first, then the rest), which dies second
      const victim = await serverOf('virt-agent-n1');
      const gatewayServer = servers.find((server) => server !== victim)!;
      const ordered = [gatewayServer, ...servers.filter((server) => server !== gatewayServer)].map((server) => `tls://127.0.0.1:${server.clientPort}`);
      gatewayNc = await connect({ name: 'virtbus-gateway', noAsyncTraces: true, ...RECONNECT_FOREVER, ...natsConnectionOptions(identity('gateway', ordered.join(','))), noRandomize: true });
      gateway = await startGateway({ nc: gatewayNc, host: '127.0.0.1', port: 0, sseStallCheckMs: 1000 });
      expect((await serverOf('virtbus-gateway')).index).toBe(gatewayServer.index);

      await expectNodesListed(false);
      // every family, so each node's sequence (shared by pool, network and domain events) must come without a gap
      tap = openTap('/v1/events?since=0&kind=all');
      const cycle = ['start', 'suspend', 'resume', 'shutdown'] as const;
      await Promise.all(NODES.map((node) => lifecycle(node, `web-${node}`, cycle)));
      for (const node of NODES) expect((await eventsOf(node, 5)).map((event) => event.type)).toEqual(['DEFINED', 'STARTED', 'SUSPENDED', 'RESUMED', 'STOPPED']);

      // a node's server dies: n1 fails over to another server, every node keeps working and listing, a new stream opens
      await outage(victim, `db`, false, async () => {
        await Promise.all(NODES.map((node) => lifecycle(node, 'db', ['start'])));
        expect((await serverOf('virt-agent-n1')).index).not.toBe(victim.index);
        lateTap = openTap('/v1/events?since=0&kind=all');
        for (const node of NODES) expect((await eventsOf(node, 7)).slice(5).map((event) => `${event.name}/${event.type}`)).toEqual(['db/DEFINED', 'db/STARTED']);
      });

      // the gateway's own server dies: the gateway moves to another one and answers again, its open streams go on
      await outage(gatewayServer, 'app', true, async () => {
        await Promise.all(NODES.map((node) => lifecycle(node, 'app', ['start'])));
        expect((await serverOf('virtbus-gateway')).index).not.toBe(gatewayServer.index);
      });

      await Promise.all(NODES.map((node) => apiEventually('PUT', `/v1/nodes/${node}/domains/db/state`, { action: 'shutdown' }, 200)));
      await Promise.all(NODES.map((node) => apiEventually('PUT', `/v1/nodes/${node}/domains/app/state`, { action: 'shutdown' }, 200)));

      // both SSE streams saw every event of every node, in each node's order, with no gap and no repeat
      const stored = await Promise.all(NODES.map((node) => storedNodeEvents(nc, node)));
      for (const [index, node] of NODES.entries()) {
        const last = Math.max(...stored[index]!.map((event) => event.seq));
        for (const [name, open] of [['tap opened before the outages', tap] as const, ['tap opened during the first outage', lateTap] as const]) {
          const deadline = Date.now() + 30_000;
          const sequence = () => open.events.filter((item) => item.event.node === node).map((item) => item.event.seq);
          while (!sequence().includes(last) && open.errors.length === 0 && Date.now() < deadline) await sleep(100);
          expect(sequence(), `${node}, ${name}, errors: ${open.errors.join('; ')}`).toEqual(Array.from({ length: last }, (_, position) => position + 1));
          const lifecycleEvents = open.events.filter((item) => item.event.node === node && item.event.kind === 'domain.lifecycle').map((item) => `${item.event.name}/${item.event.type}`);
          expect(lifecycleEvents.slice(-2)).toEqual(['db/STOPPED', 'app/STOPPED']);
          expect(open.errors).toEqual([]);
          const ids = open.events.map((item) => item.id);
          expect(ids).toEqual([...new Set(ids)].sort((a, b) => a - b));
        }
      }
    },
    // two outages of OUTAGE_MS, each followed by a rejoin (seconds), plus the lifecycles around them
    2 * OUTAGE_MS + 240_000,
  );
});

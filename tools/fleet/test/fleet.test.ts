import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { natsConnectionOptions } from '@virtbus/security';
import { EVENTS_STREAM, IDEMPOTENCY_HEADER, NODES_BUCKET, sseMessages, type FleetDomainList, type LifecycleEvent, type NodeList } from '@virtbus/api-contract';
import { ensureTestGuest, GUEST_FLAGS, GUEST_MARKERS, hasBinaryOrSkip, netnsUnsupportedReason, storedNodeEvents, titleWithSkipReason } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { agentStateDir, endProcess, fleetDown, fleetIdentity, fleetLogTails, fleetUp, forwardToSocket, startFleetServer, type FleetState } from '../topology.js';

/** How long each killed server stays down (issue #14: 60 s, longer than nats.js' default reconnect attempts). */
const OUTAGE_MS = 60_000;
const NETNS_MISSING = netnsUnsupportedReason();
const BINARIES = ['ip', 'nats-server', 'openssl', 'qemu-system-x86_64', 'qemu-img'].every((name) => hasBinaryOrSkip(name));

/** An open SSE stream that keeps every event it receives, until closed. */
interface EventTap {
  readonly events: { id: number; event: LifecycleEvent }[];
  readonly errors: string[];
  close(): void;
}

type Forward = Awaited<ReturnType<typeof forwardToSocket>>;

describe.skipIf(NETNS_MISSING !== undefined || !BINARIES)(
  titleWithSkipReason('fleet in a box: three host namespaces on a bridge (nats-server cluster over TLS, agent each), a gateway in a fourth', NETNS_MISSING),
  () => {
    let dir: string;
    let state: FleetState | undefined;
    let nodes: string[] = [];
    let gatewayUrl = '';
    const forwards: Forward[] = [];
    /** Loopback ports in this process that reach each host's nats-server and monitoring endpoint in its namespace. */
    const natsPort = new Map<string, number>();
    const monitorPort = new Map<string, number>();
    let nc: NatsConnection;
    let tap: EventTap | undefined;
    let lateTap: EventTap | undefined;

    async function forward(socket: string): Promise<number> {
      const opened = await forwardToSocket(socket);
      forwards.push(opened);
      return opened.port;
    }

    /** The admin identity over the forwarded ports of `over` (cluster gossip ignored: namespace addresses are unreachable from here). */
    const adminConnection = (over: readonly string[]) =>
      connect({ ...natsConnectionOptions(fleetIdentity(state!.plan, 'admin', over.map((node) => `tls://127.0.0.1:${natsPort.get(node)}`).join(','))), ignoreClusterUpdates: true });

    async function api(method: string, path: string, body?: unknown, idempotencyKey?: string): Promise<{ status: number; body: Record<string, unknown> }> {
      const response = await fetch(`${gatewayUrl}${path}`, {
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

    /** The host whose nats-server holds a client connection whose name starts with `connectionName` (from the monitoring endpoints). */
    async function serverOf(connectionName: string): Promise<string> {
      for (const node of nodes) {
        // a killed server has no monitoring endpoint: it holds no connection
        const connz = (await fetch(`http://127.0.0.1:${monitorPort.get(node)}/connz?limit=1024`).then(
          (response) => response.json(),
          () => ({}),
        )) as { connections?: { name?: string }[] };
        if (connz.connections?.some((connection) => connection.name?.startsWith(connectionName))) return node;
      }
      throw new Error(`no server has a connection named ${connectionName}…`);
    }

    function openTap(path: string): EventTap {
      const controller = new AbortController();
      const events: EventTap['events'] = [];
      const errors: string[] = [];
      void (async () => {
        // a stream opened while JetStream elects its leaders may answer 503 BUS_UNAVAILABLE after its bounded wait (OUTAGES.md): a client asks again
        const deadline = Date.now() + 60_000;
        let response = await fetch(`${gatewayUrl}${path}`, { signal: controller.signal });
        while (response.status === 503 && Date.now() < deadline) {
          await response.body?.cancel();
          await sleep(500);
          response = await fetch(`${gatewayUrl}${path}`, { signal: controller.signal });
        }
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

    /** `name/TYPE/DETAIL` of the node's domain lifecycle events the first tap has seen for domain `name`, once there are `count` (or the wait ran out). */
    async function eventsOf(node: string, name: string, count: number, timeoutMs = 30_000): Promise<string[]> {
      const mine = () =>
        tap!.events.filter((item) => item.event.node === node && item.event.kind === 'domain.lifecycle' && item.event.name === name).map((item) => `${name}/${item.event.type}/${item.event.detail}`);
      const deadline = Date.now() + timeoutMs;
      while (mine().length < count && tap!.errors.length === 0 && Date.now() < deadline) await sleep(100);
      return mine();
    }
    const types = (events: string[]) => events.map((event) => event.split('/').slice(0, 2).join('/'));

    async function lifecycle(node: string, name: string, actions: readonly string[]): Promise<void> {
      await apiEventually('POST', `/v1/nodes/${node}/domains`, { name, driver: 'test', vcpus: 1, memory: 64 }, 201);
      for (const action of actions) await apiEventually('PUT', `/v1/nodes/${node}/domains/${name}/state`, { action }, 200);
    }

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'virtbus-fleet-'));
      // the guest is built (or found cached) before anything runs
      await ensureTestGuest();
      state = await fleetUp({ prefix: `vbt${process.pid % 1_000_000}`, dir: join(dir, 'fleet') });
      nodes = state.plan.hosts.map((host) => host.node);
      gatewayUrl = `http://127.0.0.1:${await forward(state.plan.gateway.httpSocket)}`;
      for (const host of state.plan.hosts) {
        natsPort.set(host.node, await forward(host.natsSocket));
        monitorPort.set(host.node, await forward(host.monitorSocket));
      }
      nc = await adminConnection(nodes);
    }, 240_000);

    afterAll(async () => {
      tap?.close();
      lateTap?.close();
      await nc?.close();
      await Promise.all(forwards.map((opened) => opened.close()));
      const left = state ? await fleetDown(state) : [];
      if (dir) await rm(dir, { recursive: true, force: true });
      // nothing of the fleet may outlive the test: no process, no namespace (the bridge and veths live only in them)
      expect(left).toEqual([]);
      if (state) {
        const namespaces = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
        expect(namespaces).not.toContain(`${state.plan.prefix}-`);
      }
    }, 60_000);

    /** Waits until the restarted server answers JetStream and every replica of the events stream is current again. */
    async function expectRejoined(node: string): Promise<void> {
      const back = await adminConnection([node]);
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
        expect(peers.map((peer) => peer.name).sort()).toEqual(nodes.map((name) => `nats-${name}`));
        expect(peers.every((peer) => peer.current)).toBe(true);
      } finally {
        await back.close();
      }
    }

    /** Every node listed online by GET /v1/nodes. */
    async function expectNodesListed(eventually: boolean): Promise<void> {
      const listed = eventually ? { status: 200, body: await apiEventually('GET', '/v1/nodes', undefined, 200) } : await api('GET', '/v1/nodes');
      expect(listed.status).toBe(200);
      expect((listed.body as unknown as NodeList).nodes.map((node) => [node.node, node.online])).toEqual(nodes.map((node) => [node, true]));
    }

    /** GET /v1/domains answers, and shows each `node/name` in its state within a bound (the index follows events). */
    async function expectFleetDomains(states: Record<string, string>, eventually: boolean): Promise<void> {
      const deadline = Date.now() + 20_000;
      let shown: Record<string, string> = {};
      for (;;) {
        const listed = eventually ? { status: 200, body: await apiEventually('GET', '/v1/domains', undefined, 200) } : await api('GET', '/v1/domains');
        expect(listed.status).toBe(200);
        shown = Object.fromEntries((listed.body as unknown as FleetDomainList).domains.map((domain) => [`${domain.node}/${domain.name}`, domain.state]));
        if (Object.entries(states).every(([key, value]) => shown[key] === value) || Date.now() > deadline) break;
        await sleep(250);
      }
      expect(shown).toMatchObject(states);
    }

    /**
     * kill -9 of a host's server for OUTAGE_MS: `first` runs at once (calls on every node), then until the server comes
     * back the node and fleet lists are asked every 2 s and each node's `toggled` domain is suspended and resumed, so
     * events keep flowing through the outage. `fromGateway`: the gateway's own server, so its first answers may be 503
     * while it reconnects. Ends once the restarted server has rejoined.
     */
    async function outage(node: string, toggled: string, fromGateway: boolean, first: () => Promise<void>): Promise<void> {
      const killedAt = Date.now();
      await endProcess(state!.plan.dir, state!.servers[node], 'SIGKILL');
      await first();
      await expectNodesListed(fromGateway);
      const states = Object.fromEntries(nodes.map((name) => [`${name}/${toggled}`, 'running']));
      await expectFleetDomains(states, fromGateway);
      let suspended = false;
      while (Date.now() - killedAt < OUTAGE_MS) {
        await Promise.all(nodes.map((name) => apiEventually('PUT', `/v1/nodes/${name}/domains/${toggled}/state`, { action: suspended ? 'resume' : 'suspend' }, 200)));
        suspended = !suspended;
        await expectNodesListed(false);
        await expectFleetDomains(Object.fromEntries(Object.keys(states).map((key) => [key, suspended ? 'paused' : 'running'])), false);
        await sleep(Math.min(2000, Math.max(0, OUTAGE_MS - (Date.now() - killedAt))));
      }
      if (suspended) await Promise.all(nodes.map((name) => apiEventually('PUT', `/v1/nodes/${name}/domains/${toggled}/state`, { action: 'resume' }, 200)));
      // the server comes back in its namespace with its store and rejoins the cluster: three current replicas again
      state!.servers[node] = await startFleetServer(state!.plan, node);
      await expectRejoined(node);
    }

    /** PIDs of the QEMU processes running domain `uuid` inside a host's namespace. */
    function qemuIn(node: string, uuid: string): number[] {
      const netns = state!.plan.hosts.find((host) => host.node === node)!.netns;
      const pids = execFileSync('ip', ['netns', 'pids', netns], { encoding: 'utf8' }).split('\n').filter(Boolean);
      return pids.filter((pid) => commandLine(pid).includes('qemu-system') && commandLine(pid).includes(uuid)).map(Number);
    }

    async function counters(node: string, uuid: string): Promise<number[]> {
      const text = await readFile(join(agentStateDir(state!.plan, node), 'drivers', 'qemu', uuid, 'console.log'), 'utf8').catch(() => '');
      return [...text.matchAll(new RegExp(`${GUEST_MARKERS.counter} (\\d+)`, 'g'))].map((match) => Number(match[1]));
    }

    async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const value = await check();
        if (value) return value;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await sleep(200);
      }
    }

    it(
      'runs lifecycles on every host, migrates a QEMU guest live between two hosts over the bridge, and survives losing a host\'s server and then the gateway\'s for 60 s each',
      async () => {
        // the processes' logs go with the fleet's directory: a failure shows their ends first
        onTestFailed(() => console.error(fleetLogTails(state!.plan)));
        const jsm = await jetstreamManager(nc);
        expect((await jsm.streams.info(EVENTS_STREAM)).config.num_replicas).toBe(3);
        expect((await jsm.streams.info(`KV_${NODES_BUCKET}`)).config.num_replicas).toBe(3);
        const [first, second] = nodes as [string, string, string];
        // each agent is on its own host's server, the gateway on the second host's
        for (const node of nodes) expect(await serverOf(`virt-agent-${node}`)).toBe(node);
        expect(await serverOf('virtbus-gateway')).toBe(second);

        await expectNodesListed(false);
        // every family, so each node's sequence (shared by pool, network and domain events) must come without a gap; one stream for all hosts
        tap = openTap('/v1/events?since=0&kind=all');
        const cycle = ['start', 'suspend', 'resume', 'shutdown'] as const;
        await Promise.all(nodes.map((node) => lifecycle(node, `web-${node}`, cycle)));
        for (const node of nodes) expect(types(await eventsOf(node, `web-${node}`, 5))).toEqual(['web-' + node + '/DEFINED', `web-${node}/STARTED`, `web-${node}/SUSPENDED`, `web-${node}/RESUMED`, `web-${node}/STOPPED`]);

        // live migration of a QEMU guest (TCG, counting on its console) from the first host to the second, over TLS on the bridge
        const guest = await ensureTestGuest();
        const disk = join(dir, 'mover.qcow2');
        execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '16M']);
        const os = { kernel: guest.kernel, initrd: guest.initrd, cmdline: `${guest.cmdline} ${GUEST_FLAGS.counter}` };
        const uuid = String((await apiEventually('POST', `/v1/nodes/${first}/domains`, { name: 'mover', driver: 'qemu', memory: 256, os, disks: [{ source: { path: disk }, format: 'qcow2' }] }, 201)).uuid);
        await apiEventually('PUT', `/v1/nodes/${first}/domains/mover/state`, { action: 'start' }, 200);
        await waitFor('the counter on the first host', async () => (await counters(first, uuid)).length >= 2);
        expect(qemuIn(first, uuid)).toHaveLength(1);
        const started = await apiEventually('POST', `/v1/nodes/${first}/domains/mover/migrate`, { destination: second, tls: true, maxDowntimeMs: 300 }, 202);
        const ended = await waitFor('the migration to end', async () => {
          const operation = (await api('GET', `/v1/nodes/${first}/operations/${String(started.id)}`)).body;
          return operation.status !== 'running' && operation;
        });
        expect(ended.status, JSON.stringify(ended.error)).toBe('success');
        const lastOnFirst = Math.max(...(await counters(first, uuid)));
        const onSecond = await waitFor('the counter on the second host', async () => {
          const seen = await counters(second, uuid);
          return seen.length > 0 && seen;
        });
        // the count goes on where it stopped: the guest's memory crossed the bridge between the two namespaces
        expect(onSecond[0]).toBeGreaterThan(lastOnFirst);
        expect(onSecond[0]).toBeLessThan(lastOnFirst + 20);
        expect(qemuIn(first, uuid)).toEqual([]);
        expect(qemuIn(second, uuid)).toHaveLength(1);
        expect((await api('GET', `/v1/nodes/${second}/domains/mover`)).body).toMatchObject({ state: 'running' });
        expect((await api('GET', `/v1/nodes/${first}/domains/mover`)).body).toMatchObject({ state: 'shutoff', reason: 'migrated' });
        await apiEventually('DELETE', `/v1/nodes/${first}/domains/mover`, undefined, 200);
        expect(await eventsOf(first, 'mover', 3)).toEqual(expect.arrayContaining(['mover/STOPPED/MIGRATED']));
        expect(await eventsOf(second, 'mover', 3)).toEqual(expect.arrayContaining(['mover/DEFINED/ADDED', 'mover/STARTED/MIGRATED', 'mover/RESUMED/MIGRATED']));
        // the guest's CPU is not needed for the outages
        await apiEventually('PUT', `/v1/nodes/${second}/domains/mover/state`, { action: 'destroy' }, 200);
        await apiEventually('DELETE', `/v1/nodes/${second}/domains/mover`, undefined, 200);

        // the first host's server dies: its agent fails over to another host's server, every node keeps working and listing, a new stream opens
        await outage(first, 'db', false, async () => {
          await Promise.all(nodes.map((node) => lifecycle(node, 'db', ['start'])));
          expect(await serverOf(`virt-agent-${first}`)).not.toBe(first);
          lateTap = openTap('/v1/events?since=0&kind=all');
          for (const node of nodes) expect(types(await eventsOf(node, 'db', 2))).toEqual(['db/DEFINED', 'db/STARTED']);
        });

        // the gateway's own server (the second host's) dies: the gateway and that host's agent move to another one, the gateway answers again, its open streams go on
        await outage(second, 'app', true, async () => {
          await Promise.all(nodes.map((node) => lifecycle(node, 'app', ['start'])));
          expect(await serverOf('virtbus-gateway')).not.toBe(second);
          expect(await serverOf(`virt-agent-${second}`)).not.toBe(second);
        });

        await Promise.all(nodes.map((node) => apiEventually('PUT', `/v1/nodes/${node}/domains/db/state`, { action: 'shutdown' }, 200)));
        await Promise.all(nodes.map((node) => apiEventually('PUT', `/v1/nodes/${node}/domains/app/state`, { action: 'shutdown' }, 200)));

        // both SSE streams saw every event of every node, in each node's order, with no gap and no repeat
        // operation progress (the migration's) is published unnumbered beside the node's sequence: only numbered events count
        const numbered = (event: LifecycleEvent) => (event as { seq?: number }).seq !== undefined;
        const stored = await Promise.all(nodes.map(async (node) => (await storedNodeEvents(nc, node)).filter(numbered)));
        for (const [index, node] of nodes.entries()) {
          const last = Math.max(...stored[index]!.map((event) => event.seq));
          for (const [name, open] of [['tap opened before the outages', tap] as const, ['tap opened during the first outage', lateTap!] as const]) {
            const deadline = Date.now() + 30_000;
            const sequence = () => open.events.filter((item) => item.event.node === node && numbered(item.event)).map((item) => item.event.seq);
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
      // a migration, two outages of OUTAGE_MS, each followed by a rejoin (seconds), plus the lifecycles around them
      2 * OUTAGE_MS + 300_000,
    );
  },
);

/** A process's command line, or '' once it is gone. */
function commandLine(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

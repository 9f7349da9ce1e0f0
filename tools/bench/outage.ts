import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from '@nats-io/transport-node';
import { sseMessages } from '@virtbus/api-contract';
import { RECONNECT_FOREVER, VirtClient } from '@virtbus/client';
import { freePort, REPO_ROOT, spawnAgent, startNatsServer, storedNodeEvents, type NatsServerHandle } from '@virtbus/testing';
import { round, summarize, type LatencySummary } from './stats.js';

export interface OutageBenchResult {
  outageSeconds: number;
  /** Latency of the gateway's answers while the bus is down, and their codes. */
  duringOutage: LatencySummary & { codes: Record<string, number> };
  /** From the server's restart to the first 200 from the gateway for a node call. */
  gatewayRecoveryMs: number;
  /** From the restart to the first answer over a plain nats.js connection that reconnects forever (the floor). */
  rawRecoveryMs: number;
  ratios: { gatewayRecoveryVsRaw: number };
}

/** A long bus outage (52 s, longer than nats.js' default 10 reconnect attempts): fail fast during it, recover after it. */
export async function benchOutage(options: { quick?: boolean } = {}): Promise<OutageBenchResult> {
  const outageMs = options.quick ? 30_000 : 52_000;
  const dir = await mkdtemp(join(tmpdir(), 'virtbus-bench-outage-'));
  let nats = await startNatsServer({ storeDir: join(dir, 'js') });
  const agent = await spawnAgent({ node: 'bench', natsUrl: nats.url, stateDir: join(dir, 'agent') });
  const port = await freePort();
  const gateway: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'apps/gateway/src/main.ts', '--nats', nats.url, '--port', String(port), '--rate-limit', '0'], {
    cwd: REPO_ROOT,
    env: { ...process.env, LOG_LEVEL: 'warn', NODE_ENV: 'production' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const nc = await connect({ servers: nats.url, ...RECONNECT_FOREVER });
  const client = new VirtClient(nc, 1000);
  const url = `http://127.0.0.1:${port}/v1/nodes/bench`;
  const status = async (): Promise<string> => {
    const response = await fetch(url).catch(() => undefined);
    if (!response) return 'refused';
    const body = (await response.json().catch(() => ({}))) as { code?: string };
    return response.status === 200 ? '200' : `${response.status} ${body.code ?? ''}`.trim();
  };
  try {
    for (let attempt = 0; (await status()) !== '200'; attempt++) {
      if (attempt > 300) throw new Error('gateway did not come up');
      await sleep(100);
    }
    await nats.stop();
    const latencies: number[] = [];
    const codes: Record<string, number> = {};
    const outageStart = performance.now();
    while (performance.now() - outageStart < outageMs) {
      const begin = performance.now();
      const code = await status();
      latencies.push(performance.now() - begin);
      codes[code] = (codes[code] ?? 0) + 1;
      await sleep(250);
    }
    const duringOutage = { ...summarize(latencies, performance.now() - outageStart), codes };
    nats = await startNatsServer({ port: nats.port, storeDir: join(dir, 'js') });
    const restarted = performance.now();
    let rawRecoveryMs: number | undefined;
    let gatewayRecoveryMs: number | undefined;
    while ((rawRecoveryMs === undefined || gatewayRecoveryMs === undefined) && performance.now() - restarted < 120_000) {
      if (rawRecoveryMs === undefined && (await client.call('bench', 'node.info', {}).then(() => true, () => false))) rawRecoveryMs = performance.now() - restarted;
      if (gatewayRecoveryMs === undefined && (await status()) === '200') gatewayRecoveryMs = performance.now() - restarted;
      await sleep(50);
    }
    if (rawRecoveryMs === undefined || gatewayRecoveryMs === undefined) throw new Error(`no recovery within 120 s (raw ${rawRecoveryMs}, gateway ${gatewayRecoveryMs})`);
    return {
      outageSeconds: outageMs / 1000,
      duringOutage,
      gatewayRecoveryMs: round(gatewayRecoveryMs, 0),
      rawRecoveryMs: round(rawRecoveryMs, 0),
      ratios: { gatewayRecoveryVsRaw: round(gatewayRecoveryMs / rawRecoveryMs, 2) },
    };
  } finally {
    gateway.kill('SIGTERM');
    await agent.stop();
    await nc.close();
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export interface FailoverBenchResult {
  /** Events the agent published over the run (its last sequence number), and how many of them after the kill. */
  events: number;
  eventsAfterKill: number;
  /** From kill -9 of the agent's server to the first 200 from the gateway (on a surviving server) for a call on that node. */
  gatewayFailoverMs: number;
  /** The same for a plain nats.js client on a surviving server calling the agent directly (the floor: the agent's own move). */
  rawFailoverMs: number;
  /** Attempts (one every 20 ms from the kill) that failed only after 400 ms or more: sent towards the dead server, they waited for their timeout. */
  slowFailures: { gateway: number; raw: number };
  /** Sequence numbers of the node an SSE stream opened before the kill never delivered (target 0), and ones it delivered twice. */
  sseMissing: number;
  sseRepeated: number;
  /** Sequence numbers the stream itself lacks (the agent's outbox re-sends: 0). */
  storedMissing: number;
  ratios: { gatewayFailoverVsRaw: number };
}

/** One server of a three-server cluster (plain TCP routes, JetStream replicas 3). */
interface BenchServer {
  index: number;
  clientPort: number;
  routePort: number;
  httpPort: number;
  storeDir: string;
  handle?: NatsServerHandle;
}

/**
 * A node's NATS server dies (kill -9) under a steady flow of its events: how long until the gateway reaches the node again
 * (vs a plain client, the floor), and whether an SSE stream opened before the kill misses any of the node's events.
 */
export async function benchFailover(options: { quick?: boolean } = {}): Promise<FailoverBenchResult> {
  const settleMs = options.quick ? 3000 : 6000;
  const dir = await mkdtemp(join(tmpdir(), 'virtbus-bench-failover-'));
  const servers: BenchServer[] = await Promise.all(
    [0, 1, 2].map(async (index) => ({ index, clientPort: await freePort(), routePort: await freePort(), httpPort: await freePort(), storeDir: join(dir, `js-${index}`) })),
  );
  const config = (server: BenchServer) =>
    [
      `server_name: "nats-${server.index}"`,
      `http: "127.0.0.1:${server.httpPort}"`,
      `cluster { name: "bench", listen: "127.0.0.1:${server.routePort}", routes: [${servers
        .filter((other) => other !== server)
        .map((other) => `"nats-route://127.0.0.1:${other.routePort}"`)
        .join(', ')}] }`,
    ].join('\n');
  const urlOf = (server: BenchServer) => `nats://127.0.0.1:${server.clientPort}`;
  let agent: Awaited<ReturnType<typeof spawnAgent>> | undefined;
  let gateway: ChildProcess | undefined;
  const connections: { close(): Promise<void> }[] = [];
  const sse = new AbortController();
  let generating = true;
  try {
    await Promise.all(servers.map(async (server) => (server.handle = await startNatsServer({ port: server.clientPort, storeDir: server.storeDir, config: config(server) }))));
    agent = await spawnAgent({ node: 'fo', natsUrl: servers.map(urlOf).join(','), stateDir: join(dir, 'agent'), extraArgs: ['--heartbeat-interval', '1'] });
    // the agent's server is the one that dies; everyone else sits on the other two
    let victim: BenchServer | undefined;
    for (const server of servers) {
      const connz = (await fetch(`http://127.0.0.1:${server.httpPort}/connz?limit=1024`).then((response) => response.json())) as { connections?: { name?: string }[] };
      if (connz.connections?.some((connection) => connection.name === 'virt-agent-fo')) victim = server;
    }
    if (!victim) throw new Error('no server holds the agent connection');
    const survivors = servers.filter((server) => server !== victim).map(urlOf);
    const nc = await connect({ servers: survivors, ...RECONNECT_FOREVER });
    connections.push(nc);
    const client = new VirtClient(nc, 1000);
    const port = await freePort();
    gateway = spawn(process.execPath, ['--import', 'tsx', 'apps/gateway/src/main.ts', '--nats', survivors.join(','), '--port', String(port), '--rate-limit', '0'], {
      cwd: REPO_ROOT,
      env: { ...process.env, LOG_LEVEL: 'warn', NODE_ENV: 'production' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const base = `http://127.0.0.1:${port}`;
    const ok = (path: string) => fetch(`${base}${path}`).then((response) => response.ok, () => false);
    for (let attempt = 0; !(await ok('/v1/nodes/fo')); attempt++) {
      if (attempt > 300) throw new Error('gateway did not come up');
      await sleep(100);
    }
    await client.call('fo', 'domain.define', { name: 'web', driver: 'test', vcpus: 1, memory: 64 });
    await client.call('fo', 'domain.state', { id: 'web', change: { action: 'start' } });

    // every sequence number of the node the stream delivers
    const delivered: number[] = [];
    const response = await fetch(`${base}/v1/events?since=0&kind=all`, { signal: sse.signal });
    if (response.status !== 200) throw new Error(`SSE answered ${response.status}`);
    void (async () => {
      for await (const { data } of sseMessages(response.body as unknown as AsyncIterable<Uint8Array>)) {
        const event = data ? (JSON.parse(data) as { node?: string; seq?: number }) : undefined;
        if (event?.node === 'fo' && typeof event.seq === 'number') delivered.push(event.seq);
      }
    })().catch(() => undefined);

    // a steady flow of the node's events: suspend, resume, … (a call in flight during the move is tried again)
    const phase: { killedAt?: number } = {};
    let afterKill = 0;
    const flow = (async () => {
      for (let suspended = false; generating; ) {
        const done = await client.call('fo', 'domain.state', { id: 'web', change: { action: suspended ? 'resume' : 'suspend' } }).then(
          () => true,
          () => false,
        );
        // a call whose answer was lost may have been done: the next action follows the domain's state
        if (!done) suspended = await client.call('fo', 'domain.get', { id: 'web' }).then((domain) => domain.state === 'paused', () => suspended);
        if (done) {
          suspended = !suspended;
          if (phase.killedAt !== undefined) afterKill++;
        }
        await sleep(done ? 20 : 50);
      }
    })();
    await sleep(settleMs / 2);

    process.kill(victim.handle!.pid, 'SIGKILL');
    const killedAt = performance.now();
    phase.killedAt = killedAt;
    // a new attempt every 20 ms, not after the last one ended: a request that went to the dead server waits its whole
    // timeout (10 s in the gateway), and the figure is when the node answers again, not when that request gives up
    const probe = async (attempt: () => Promise<boolean>): Promise<{ ms: number | undefined; timedOut: number }> => {
      let answeredAt: number | undefined;
      let timedOut = 0;
      const pending = new Set<Promise<void>>();
      while (answeredAt === undefined && performance.now() - killedAt < 60_000) {
        const begin = performance.now();
        const run = attempt().then((answered) => {
          if (answered) answeredAt = Math.min(answeredAt ?? Number.POSITIVE_INFINITY, performance.now());
          else if (performance.now() - begin > 400) timedOut++;
        });
        pending.add(run);
        void run.finally(() => pending.delete(run));
        await sleep(20);
      }
      await Promise.all(pending);
      return { ms: answeredAt === undefined ? undefined : answeredAt - killedAt, timedOut };
    };
    const [raw, viaGateway] = await Promise.all([
      probe(() => client.call('fo', 'node.info', {}, { timeoutMs: 500 }).then(() => true, () => false)),
      probe(() => ok('/v1/nodes/fo')),
    ]);
    const rawFailoverMs = raw.ms;
    const gatewayFailoverMs = viaGateway.ms;
    if (rawFailoverMs === undefined || gatewayFailoverMs === undefined) throw new Error(`no failover within 60 s (raw ${rawFailoverMs}, gateway ${gatewayFailoverMs})`);
    await sleep(settleMs / 2);
    generating = false;
    await flow;

    // every event the node published is in the stream; the SSE stream has caught up once it delivered the last one
    // JetStream may still be electing leaders after the loss of a server: the read is tried again
    let stored: Awaited<ReturnType<typeof storedNodeEvents>> | undefined;
    for (const readUntil = Date.now() + 60_000; !stored; await sleep(500)) {
      stored = await storedNodeEvents(nc, 'fo').catch((error: unknown) => {
        if (Date.now() > readUntil) throw error;
        return undefined;
      });
    }
    const last = Math.max(...stored.map((event) => event.seq));
    const deadline = Date.now() + 60_000;
    while (!delivered.includes(last) && Date.now() < deadline) await sleep(100);
    const storedSeqs = new Set(stored.map((event) => event.seq));
    const deliveredSeqs = new Set(delivered);
    const missing = (seen: Set<number>) => Array.from({ length: last }, (_, index) => index + 1).filter((seq) => !seen.has(seq)).length;
    return {
      events: last,
      eventsAfterKill: afterKill,
      gatewayFailoverMs: round(gatewayFailoverMs, 0),
      rawFailoverMs: round(rawFailoverMs, 0),
      slowFailures: { gateway: viaGateway.timedOut, raw: raw.timedOut },
      sseMissing: missing(deliveredSeqs),
      sseRepeated: delivered.length - deliveredSeqs.size,
      storedMissing: missing(storedSeqs),
      ratios: { gatewayFailoverVsRaw: round(gatewayFailoverMs / rawFailoverMs, 2) },
    };
  } finally {
    generating = false;
    sse.abort();
    gateway?.kill('SIGTERM');
    await agent?.stop();
    for (const connection of connections) await connection.close();
    await Promise.all(servers.map((server) => server.handle?.stop()));
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Host scale: events/s and publish lag with 16 domains changing state in parallel (baselines: a bare pipelined
 * JetStream publisher and a bare append+fsync loop), define rate at 100 vs N domains, the first page of 100 domains at N
 * vs a raw NATS request/reply, restart time with N domains vs an empty agent, and agent RSS per defined domain (after a
 * forced GC). N is --hostscale-domains (10,000 by default, 2,000 with --quick).
 */
import { spawn as spawnChild } from 'node:child_process';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Subjects, type LifecycleEvent } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { type AgentProcess, type NatsServerHandle, QUIET_AGENT_ARGS, REPO_ROOT, spawnAgent, startNatsServer } from '@virtbus/testing';
import { waitForLine } from './bus.js';
import { INSPECT_ARGS, measureAfterGc, type MemoryAfterGc } from './inspector.js';
import { median, percentile, round } from './stats.js';

export interface HostScaleBenchResult {
  domains: number;
  events: {
    parallelDomains: number;
    seconds: number;
    agentEventsPerSec: number;
    lagP50Ms: number;
    lagP99Ms: number;
    bareJetStreamPerSec: number;
    bareAppendFsyncPerSec: number;
    vsBareJetStream: number;
    vsBareAppendFsync: number;
  };
  define: { ratePerSecAt100: number; ratePerSecAtN: number; ratio: number };
  /** domain.list {limit: 100} over NATS (VirtClient → agent with N domains) vs a trivial responder process, p50 of sequential calls. */
  firstPage: { calls: number; pageP50Ms: number; rawP50Ms: number; ratio: number };
  restart: { emptyMs: number; loadedMs: number; ratio: number };
  /** Every figure after two forced full GCs (over the agent's inspector); KiB of RSS and of V8's used heap. */
  rss: {
    empty: MemoryAfterGc;
    loaded: MemoryAfterGc;
    emptyRestart: MemoryAfterGc;
    afterRestart: MemoryAfterGc;
    definedBytesPerDomain: number;
    restartedBytesPerDomain: number;
    definedHeapBytesPerDomain: number;
    restartedHeapBytesPerDomain: number;
    /** RSS growth per domain without forcing a GC (what the process holds, garbage included), for reference. */
    definedBytesPerDomainNoGc: number;
  };
}

const PARALLEL_DOMAINS = 16;
const PUBLISH_WINDOW = 256;
const DEFINE_ROUNDS = 5;
const DEFINE_PROBE = 100;
const DEFINE_WARMUP_ROUNDS = 10;
const PAGE_LIMIT = 100;


async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
}

/** Defines `count` test domains named `${prefix}-i` with `inFlight` calls outstanding; returns defines/s. */
async function defineMany(client: VirtClient, node: string, prefix: string, from: number, count: number, inFlight: number): Promise<number> {
  let next = from;
  const end = from + count;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < end) {
        const index = next++;
        await client.call(node, 'domain.define', { name: `${prefix}-${index}`, driver: 'test' }, { timeoutMs: 30_000 });
      }
    }),
  );
  return (count * 1000) / (performance.now() - started);
}

/** 16 domains flip start/destroy for `seconds`; a plain subscriber counts events and their emit → delivery lag. */
async function eventsUnderLoad(nc: NatsConnection, client: VirtClient, node: string, seconds: number): Promise<{ perSec: number; lags: number[] }> {
  const domains = await Promise.all(Array.from({ length: PARALLEL_DOMAINS }, (_, index) => client.call(node, 'domain.define', { name: `flip-${index}`, driver: 'test' })));
  const lags: number[] = [];
  let counting = false;
  let counted = 0;
  const subscription = nc.subscribe(Subjects.nodeEvents(node), {
    callback: (_error, message) => {
      const event = message.json<LifecycleEvent>();
      if (!counting || event.kind !== 'domain.lifecycle') return;
      counted++;
      lags.push(Date.now() - Date.parse(event.timestamp));
    },
  });
  await nc.flush();
  let stop = false;
  const loops = domains.map(async (domain) => {
    let running = false;
    while (!stop) {
      await client.call(node, 'domain.state', { id: domain.uuid, change: { action: running ? 'destroy' : 'start' } }, { timeoutMs: 30_000 });
      running = !running;
    }
  });
  await sleep(500);
  counting = true;
  const started = performance.now();
  await sleep(seconds * 1000);
  counting = false;
  const wallMs = performance.now() - started;
  stop = true;
  await Promise.all(loops);
  subscription.unsubscribe();
  return { perSec: (counted * 1000) / wallMs, lags };
}

/** A bare pipelined JetStream publisher: `PUBLISH_WINDOW` publishes in flight, each with a msgID, for `seconds`. */
async function bareJetStream(nc: NatsConnection, seconds: number): Promise<number> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'BENCH_BARE', subjects: ['bench.bare.>'], storage: StorageType.File, max_msgs: 1_000_000 });
  const js = jetstream(nc);
  const payload = JSON.stringify({ kind: 'domain.lifecycle', node: 'bare', seq: 0, timestamp: new Date().toISOString(), uuid: '00000000-0000-4000-8000-000000000000', name: 'flip-0', type: 'STARTED', detail: 'BOOTED', state: 'running', reason: 'booted' });
  const inflight: Promise<unknown>[] = [];
  let seq = 0;
  let acked = 0;
  const until = performance.now() + seconds * 1000;
  const started = performance.now();
  while (performance.now() < until) {
    while (inflight.length < PUBLISH_WINDOW) inflight.push(js.publish('bench.bare.event', payload, { msgID: `bare-${++seq}` }));
    await inflight.shift();
    acked++;
  }
  await Promise.all(inflight);
  acked += inflight.length;
  const perSec = (acked * 1000) / (performance.now() - started);
  await jsm.streams.delete('BENCH_BARE');
  return perSec;
}

/** A bare durable log without group commit: append one event-sized line, fdatasync, repeat. */
async function bareAppendFsync(dir: string, seconds: number): Promise<number> {
  const handle = await open(join(dir, 'bare.log'), 'a');
  const line = `${JSON.stringify({ event: { kind: 'domain.lifecycle', node: 'bare', seq: 1, timestamp: new Date().toISOString(), uuid: '00000000-0000-4000-8000-000000000000', type: 'STARTED' } })}\n`;
  let count = 0;
  const until = performance.now() + seconds * 1000;
  const started = performance.now();
  try {
    while (performance.now() < until) {
      await handle.appendFile(line);
      await handle.datasync();
      count++;
    }
  } finally {
    await handle.close();
  }
  return (count * 1000) / (performance.now() - started);
}

/** p50 of `calls` sequential first-page lists vs raw request/replies to a trivial responder process, interleaved call by call. */
async function firstPageVsRaw(natsUrl: string, nc: NatsConnection, client: VirtClient, node: string, calls: number): Promise<{ pageMs: number; rawMs: number }> {
  const responder = spawnChild(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./responder.ts', import.meta.url)), natsUrl, 'bench.raw'], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    await waitForLine(responder, 'ready');
    const page: number[] = [];
    const raw: number[] = [];
    for (let call = -calls / 10; call < calls; call++) {
      let started = performance.now();
      const listed = await client.call(node, 'domain.list', { limit: PAGE_LIMIT });
      const pageMs = performance.now() - started;
      if (listed.domains.length !== PAGE_LIMIT) throw new Error(`a first page held ${listed.domains.length} domains, not ${PAGE_LIMIT}`);
      started = performance.now();
      await nc.request('bench.raw', '{"id":"x"}', { timeout: 5000 });
      const rawMs = performance.now() - started;
      if (call < 0) continue;
      page.push(pageMs);
      raw.push(rawMs);
    }
    return { pageMs: median(page), rawMs: median(raw) };
  } finally {
    responder.kill('SIGTERM');
  }
}

async function timedStart(options: Parameters<typeof spawnAgent>[0]): Promise<{ agent: AgentProcess; ms: number }> {
  const started = performance.now();
  const agent = await spawnAgent(options);
  return { agent, ms: performance.now() - started };
}

export async function benchHostScale(options: { quick: boolean; domains: number }): Promise<HostScaleBenchResult> {
  const seconds = options.quick ? 3 : 6;
  const workDir = await mkdtemp(join(tmpdir(), 'virtbus-bench-hostscale-'));
  let nats: NatsServerHandle | undefined;
  let nc: NatsConnection | undefined;
  const agents: AgentProcess[] = [];
  try {
    nats = await startNatsServer({ storeDir: join(workDir, 'js') });
    nc = await connect({ servers: nats.url });
    const client = new VirtClient(nc);
    const spawn = async (node: string) => {
      // readiness polled every 20 ms: the default 100 ms steps were a third of an empty agent's start
      const started = await timedStart({ node, natsUrl: nats!.url, stateDir: join(workDir, node), extraArgs: QUIET_AGENT_ARGS, nodeArgs: INSPECT_ARGS, readyPollMs: 20 });
      agents.push(started.agent);
      return started;
    };

    // (a) events under parallel state changes, and the two floors
    const flip = await spawn('flip');
    const load = await eventsUnderLoad(nc, client, 'flip', seconds);
    await flip.agent.stop();
    const bareJs = await bareJetStream(nc, seconds);
    const bareFsync = await bareAppendFsync(workDir, seconds);
    const sortedLags = [...load.lags].sort((a, b) => a - b);

    // (b) define rate at 100 and at N domains; (d) RSS per defined domain
    const empty = await spawn('scale');
    const emptyMemory = await measureAfterGc(empty.agent.pid, empty.agent.output);
    const small = await spawn('small');
    await defineMany(client, 'small', 'warm', 0, 100, 16);
    const emptyKiB = await rssKiB(empty.agent.pid);
    await defineMany(client, 'scale', 'fill', 0, options.domains, 64);
    const loadedKiB = await rssKiB(empty.agent.pid);
    const loadedMemory = await measureAfterGc(empty.agent.pid, empty.agent.output);
    // Probes alternate between the agent with 100 and the one with N domains (the machine's load changes over time);
    // each probe's domains are undefined again, untimed, so the counts stay at 100 and N.
    const at100: number[] = [];
    const atN: number[] = [];
    // The first rounds only warm up the small agent's JIT (the large one warmed up defining N domains).
    for (let round = -DEFINE_WARMUP_ROUNDS; round < DEFINE_ROUNDS; round++) {
      for (const [node, rates] of [['small', at100], ['scale', atN]] as const) {
        const rate = await defineMany(client, node, `probe${round}`, 0, DEFINE_PROBE, 16);
        if (round >= 0) rates.push(rate);
        await Promise.all(Array.from({ length: DEFINE_PROBE }, (_, index) => client.call(node, 'domain.undefine', { id: `probe${round}-${index}` }, { timeoutMs: 30_000 })));
      }
    }
    const ratePerSecAt100 = median(at100);
    const ratePerSecAtN = median(atN);
    const total = options.domains;
    const pageCalls = options.quick ? 200 : 500;
    const firstPage = await firstPageVsRaw(nats.url, nc, client, 'scale', pageCalls);
    await small.agent.stop();
    await empty.agent.stop();

    // (c) restart with N domains vs an agent with none
    const emptyStart = await spawn('empty');
    await emptyStart.agent.stop();
    const emptyRestart = await spawn('empty');
    await sleep(500);
    const emptyRestartMemory = await measureAfterGc(emptyRestart.agent.pid, emptyRestart.agent.output);
    await emptyRestart.agent.stop();
    const loadedRestart = await spawn('scale');
    await sleep(500);
    const afterRestartMemory = await measureAfterGc(loadedRestart.agent.pid, loadedRestart.agent.output);
    await loadedRestart.agent.stop();
    const perDomain = (from: number, to: number) => Math.round(((to - from) * 1024) / total);

    return {
      domains: total,
      events: {
        parallelDomains: PARALLEL_DOMAINS,
        seconds,
        agentEventsPerSec: Math.round(load.perSec),
        lagP50Ms: percentile(sortedLags, 50),
        lagP99Ms: percentile(sortedLags, 99),
        bareJetStreamPerSec: Math.round(bareJs),
        bareAppendFsyncPerSec: Math.round(bareFsync),
        vsBareJetStream: round(load.perSec / bareJs, 3),
        vsBareAppendFsync: round(load.perSec / bareFsync, 2),
      },
      define: { ratePerSecAt100: Math.round(ratePerSecAt100), ratePerSecAtN: Math.round(ratePerSecAtN), ratio: round(ratePerSecAtN / ratePerSecAt100, 2) },
      firstPage: { calls: pageCalls, pageP50Ms: round(firstPage.pageMs, 3), rawP50Ms: round(firstPage.rawMs, 3), ratio: round(firstPage.pageMs / firstPage.rawMs, 2) },
      restart: { emptyMs: Math.round(emptyRestart.ms), loadedMs: Math.round(loadedRestart.ms), ratio: round(loadedRestart.ms / emptyRestart.ms, 2) },
      rss: {
        empty: emptyMemory,
        loaded: loadedMemory,
        emptyRestart: emptyRestartMemory,
        afterRestart: afterRestartMemory,
        definedBytesPerDomain: perDomain(emptyMemory.rssKiB, loadedMemory.rssKiB),
        restartedBytesPerDomain: perDomain(emptyRestartMemory.rssKiB, afterRestartMemory.rssKiB),
        definedHeapBytesPerDomain: perDomain(emptyMemory.heapUsedKiB, loadedMemory.heapUsedKiB),
        restartedHeapBytesPerDomain: perDomain(emptyRestartMemory.heapUsedKiB, afterRestartMemory.heapUsedKiB),
        definedBytesPerDomainNoGc: perDomain(emptyKiB, loadedKiB),
      },
    };
  } finally {
    for (const agent of agents) await agent.stop().catch(() => undefined);
    await nc?.close();
    await nats?.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}

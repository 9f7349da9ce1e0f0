import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { EventTimeHeaders, Subjects, type LifecycleEvent } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { freePort, REPO_ROOT, spawnAgent, startNatsServer } from '@virtbus/testing';
import { PROFILE_ROWS, repeatFor, type BenchProfiler } from './profile.js';
import { round, summarize, type LatencySummary } from './stats.js';

export interface ScrapeBench {
  domains: number;
  /** Sample lines in the agent's exposition. */
  series: number;
  agent: LatencySummary;
  baseline: LatencySummary;
  p50VsBaseline: number;
  p90VsBaseline: number;
}

export interface MonitoringBenchResult {
  scrapes: number;
  scrape: ScrapeBench[];
  /**
   * agent: emit (before the event log write and fsync) → subscriber; published: the agent's publish → subscriber (µs headers).
   * Floors of the two steps an event takes beyond a raw publish: rawJetStream, a JetStream publish into the events stream →
   * subscriber; durableAppend, one O_DSYNC write of an event-sized line in the same directory (the event log's write).
   */
  events: {
    count: number;
    agent: LatencySummary;
    published: LatencySummary;
    raw: LatencySummary;
    rawJetStream: LatencySummary;
    durableAppend: LatencySummary;
    p50VsRaw: number;
    publishedP50VsRaw: number;
    /** emit → subscriber p50 / (durable append p50 + raw JetStream publish → subscriber p50): what the agent adds to its floors. */
    p50VsFloors: number;
  };
}

const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 1 });

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { agent: httpAgent }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => (response.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${response.statusCode}`))));
    });
    request.on('error', reject);
    request.end();
  });
}

async function timeScrapes(url: string, count: number): Promise<LatencySummary> {
  for (let warm = 0; warm < 3; warm++) await get(url);
  const latencies: number[] = [];
  const wall = performance.now();
  for (let index = 0; index < count; index++) {
    const started = performance.now();
    await get(url);
    latencies.push(performance.now() - started);
  }
  return summarize(latencies, performance.now() - wall);
}

async function startStaticMetrics(series: number): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./static-metrics.ts', import.meta.url)), String(series)], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /ready (\S+)/.exec(out);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`static metrics server exited ${code}`)));
  });
  return { url: `${url}/metrics`, child };
}

/** Runs `task` over `items` with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, task: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await task(items[next++]!);
    }),
  );
}

/**
 * Scrape latency of the agent's /metrics with N running test-driver domains (cache off: every scrape collects) against
 * a static prom-client registry with the same number of series on the same metrics server (its own process), and the
 * event publish → plain NATS subscriber latency against raw NATS publish → subscribe, all in one run.
 */
export async function benchMonitoring(options: { quick?: boolean; profiler?: BenchProfiler } = {}): Promise<MonitoringBenchResult> {
  const scrapes = options.quick ? 20 : 50;
  const eventCount = options.quick ? 100 : 400;
  const nats = await startNatsServer();
  const workDir = await mkdtemp(join(tmpdir(), 'virtbus-bench-monitoring-'));
  const nc: NatsConnection = await connect({ servers: nats.url });
  const client = new VirtClient(nc);
  const scrape: ScrapeBench[] = [];
  try {
    for (const domains of [1, 100, 1000]) {
      const node = `scrape${domains}`;
      const port = await freePort();
      const agent = await spawnAgent({
        node,
        natsUrl: nats.url,
        stateDir: join(workDir, node),
        extraArgs: ['--metrics-address', `127.0.0.1:${port}`, '--metrics-cache-ms', '0', '--stats-interval', '0'],
      });
      let baseline: { url: string; child: ChildProcess } | undefined;
      try {
        await pool(
          Array.from({ length: domains }, (_, index) => index),
          32,
          async (index) => {
            const domain = await client.call(node, 'domain.define', { name: `vm-${index}`, driver: 'test' });
            await client.call(node, 'domain.state', { id: domain.uuid, change: { action: 'start' } });
          },
        );
        const url = `http://127.0.0.1:${port}/metrics`;
        const exposition = await get(url);
        const series = exposition.split('\n').filter((line) => line && !line.startsWith('#')).length;
        const agentResult = await timeScrapes(url, scrapes);
        baseline = await startStaticMetrics(series);
        const baselineResult = await timeScrapes(baseline.url, scrapes);
        scrape.push({
          domains,
          series,
          agent: agentResult,
          baseline: baselineResult,
          p50VsBaseline: round(agentResult.p50Ms / baselineResult.p50Ms, 2),
          p90VsBaseline: round(agentResult.p90Ms / baselineResult.p90Ms, 2),
        });
      } finally {
        baseline?.child.kill('SIGTERM');
        await agent.stop();
      }
    }

    // Events: the agent's emit and publish times (µs headers) → a plain NATS subscriber; baseline: a raw publish carrying a
    // sub-ms timestamp from another connection of this process.
    const node = 'events';
    const agent = await spawnAgent({ node, natsUrl: nats.url, stateDir: join(workDir, node), extraArgs: ['--metrics-address', 'off', '--stats-interval', '0'], nodeArgs: [...(options.profiler?.nodeArgs ?? [])] });
    const subscriber = await connect({ servers: nats.url });
    const publisher = await connect({ servers: nats.url });
    try {
      const agentLatencies: number[] = [];
      const publishedLatencies: number[] = [];
      const now = () => performance.timeOrigin + performance.now();
      subscriber.subscribe(Subjects.nodeEvents(node), {
        callback: (_error, msg) => {
          const event = msg.json<LifecycleEvent>();
          if (event.kind !== 'domain.lifecycle' || event.type === 'DEFINED') return;
          // the agent's microsecond headers (the event's ISO timestamp has 1 ms resolution)
          const at = now();
          agentLatencies.push(at - Number(msg.headers?.get(EventTimeHeaders.emitted)) / 1000);
          publishedLatencies.push(at - Number(msg.headers?.get(EventTimeHeaders.published)) / 1000);
        },
      });
      const rawLatencies: number[] = [];
      subscriber.subscribe('bench.monitoring.raw', {
        callback: (_error, msg) => {
          rawLatencies.push(now() - Number(msg.string()));
        },
      });
      await subscriber.flush();

      // the same hop through JetStream: stored in the events stream (acked) before it is delivered
      const js = jetstream(publisher);
      const jsSubject = Subjects.domainEvent('bench-floor', '00000000-0000-4000-8000-000000000000', 'STARTED');
      const jsLatencies: number[] = [];
      subscriber.subscribe(jsSubject, {
        callback: (_error, msg) => {
          jsLatencies.push(now() - Number(msg.string()));
        },
      });
      await subscriber.flush();
      const floorLog = await open(join(workDir, 'floor.log'), constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC, 0o600);
      const appendLatencies: number[] = [];
      const domain = await client.call(node, 'domain.define', { name: 'events-vm', driver: 'test' });
      // the four paths interleaved in rounds: a burst of disk or CPU load from elsewhere on the machine hits them alike
      const rounds = 10;
      const walls = { agent: 0, raw: 0, js: 0, append: 0 };
      const timed = async (key: keyof typeof walls, step: (index: number) => Promise<unknown>, from: number, to: number): Promise<void> => {
        const start = performance.now();
        for (let index = from; index < to; index++) await step(index);
        walls[key] += performance.now() - start;
      };
      try {
        for (let round_ = 0; round_ < rounds; round_++) {
          const from = Math.floor((round_ * eventCount) / rounds);
          const to = Math.floor(((round_ + 1) * eventCount) / rounds);
          await timed('agent', (index) => client.call(node, 'domain.state', { id: domain.uuid, change: { action: index % 2 === 0 ? 'start' : 'destroy' } }), from, to);
          await timed('raw', async () => {
            publisher.publish('bench.monitoring.raw', String(now()));
            await publisher.flush();
            await subscriber.flush();
          }, from, to);
          await timed('js', async () => {
            await js.publish(jsSubject, String(now()));
            await subscriber.flush();
          }, from, to);
          await timed('append', async () => {
            const start = performance.now();
            await floorLog.write(EVENT_LINE);
            appendLatencies.push(performance.now() - start);
          }, from, to);
        }
      } finally {
        await floorLog.close();
      }
      const until = Date.now() + 10_000;
      while ((agentLatencies.length < eventCount || rawLatencies.length < eventCount || jsLatencies.length < eventCount) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20));
      if (agentLatencies.some((value) => !Number.isFinite(value))) throw new Error('an agent event came without its time headers');
      const agentSummary = summarize(agentLatencies, walls.agent);
      const publishedSummary = summarize(publishedLatencies, walls.agent);
      const rawSummary = summarize(rawLatencies, walls.raw);
      const jsSummary = summarize(jsLatencies, walls.js);
      const durableAppend = summarize(appendLatencies, walls.append);
      const result = {
        scrapes,
        scrape,
        events: {
          count: eventCount,
          agent: agentSummary,
          published: publishedSummary,
          raw: rawSummary,
          rawJetStream: jsSummary,
          durableAppend,
          p50VsRaw: round(agentSummary.p50Ms / rawSummary.p50Ms, 1),
          publishedP50VsRaw: round(publishedSummary.p50Ms / rawSummary.p50Ms, 1),
          p50VsFloors: round(agentSummary.p50Ms / (durableAppend.p50Ms + jsSummary.p50Ms), 2),
        },
      };
      // after the measured phase: the same state changes again, profiled
      const profiler = options.profiler;
      await profiler?.cpu([PROFILE_ROWS.event], [{ name: 'agent', pid: agent.pid, output: agent.output }, { name: 'nats-server', pid: nats.pid }], async () => {
        let index = 0;
        const units = await repeatFor(profiler.seconds, () => client.call(node, 'domain.state', { id: domain.uuid, change: { action: index++ % 2 === 0 ? 'start' : 'destroy' } }));
        // an even count leaves the domain as it was
        if (index % 2 === 1) await client.call(node, 'domain.state', { id: domain.uuid, change: { action: 'destroy' } });
        return [{ row: PROFILE_ROWS.event, per: 'state change (call + its event)', unit: 'request', units }];
      });
      return result;
    } finally {
      await subscriber.close();
      await publisher.close();
      await agent.stop();
    }
  } finally {
    await nc.close();
    await nats.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}

/** An event log line of a lifecycle event with its domain record: the floor's one durable append (O_DSYNC, like the event log). */
const EVENT_LINE = Buffer.from(
  `${JSON.stringify({
    event: { kind: 'domain.lifecycle', node: 'events', seq: 1, timestamp: new Date(0).toISOString(), uuid: '00000000-0000-4000-8000-000000000000', name: 'events-vm', type: 'STARTED', detail: 'BOOTED', state: 'running', reason: 'booted' },
    domain: { uuid: '00000000-0000-4000-8000-000000000000', name: 'events-vm', state: 'running', reason: 'booted' },
  })}\n`,
);

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { EventTimeHeaders, Subjects, type LifecycleEvent } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { freePort, REPO_ROOT, spawnAgent, startNatsServer } from '@virtbus/testing';
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
  /** agent: emit (before the event log write and fsync) → subscriber; published: the agent's publish → subscriber (µs headers). */
  events: { count: number; agent: LatencySummary; published: LatencySummary; raw: LatencySummary; p50VsRaw: number; publishedP50VsRaw: number };
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
export async function benchMonitoring(options: { quick?: boolean } = {}): Promise<MonitoringBenchResult> {
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
    const agent = await spawnAgent({ node, natsUrl: nats.url, stateDir: join(workDir, node), extraArgs: ['--metrics-address', 'off', '--stats-interval', '0'] });
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

      const domain = await client.call(node, 'domain.define', { name: 'events-vm', driver: 'test' });
      const wall = performance.now();
      for (let index = 0; index < eventCount; index++) {
        await client.call(node, 'domain.state', { id: domain.uuid, change: { action: index % 2 === 0 ? 'start' : 'destroy' } });
      }
      const agentWall = performance.now() - wall;
      const rawWall = performance.now();
      for (let index = 0; index < eventCount; index++) {
        publisher.publish('bench.monitoring.raw', String(now()));
        await publisher.flush();
        await subscriber.flush();
      }
      const rawWallMs = performance.now() - rawWall;
      const until = Date.now() + 10_000;
      while ((agentLatencies.length < eventCount || rawLatencies.length < eventCount) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20));
      if (agentLatencies.some((value) => !Number.isFinite(value))) throw new Error('an agent event came without its time headers');
      const agentSummary = summarize(agentLatencies, agentWall);
      const publishedSummary = summarize(publishedLatencies, agentWall);
      const rawSummary = summarize(rawLatencies, rawWallMs);
      return {
        scrapes,
        scrape,
        events: {
          count: eventCount,
          agent: agentSummary,
          published: publishedSummary,
          raw: rawSummary,
          p50VsRaw: round(agentSummary.p50Ms / rawSummary.p50Ms, 1),
          publishedP50VsRaw: round(publishedSummary.p50Ms / rawSummary.p50Ms, 1),
        },
      };
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

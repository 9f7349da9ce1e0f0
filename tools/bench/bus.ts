import { spawn } from 'node:child_process';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { VirtClient } from '@virtbus/client';
import { builtBundle, freePort, REPO_ROOT, spawnAgent, startNatsServer } from '@virtbus/testing';
import { httpLoad, httpLoadGenerator, httpLoadWithCpu, rssKiB, type HttpLoadResult } from './httpload.js';
import { PROFILE_ROWS, repeatFor, stderrOf, type BenchProfiler, type ProfiledProcess } from './profile.js';
import { load, round, summarize, timeCalls, type LatencySummary } from './stats.js';

type HttpLoadFigure = HttpLoadResult & { cpuMicrosPerRequest: Record<string, number> };

export interface BusBenchResult {
  requests: { inFlight1: number; inFlight64: number };
  raw: Record<'c1' | 'c64', LatencySummary>;
  agent: Record<'c1' | 'c64', LatencySummary>;
  gateway: Record<'c1' | 'c64', LatencySummary>;
  /** Plain node:http forwarding the same bus call: what HTTP in front of NATS costs here before any gateway feature. */
  httpForwarder: Record<'c1' | 'c64', LatencySummary>;
  /** 64 keep-alive connections from an external load generator (wrk when installed), gateway and forwarder alternated. */
  http64: { generator: 'wrk' | 'worker'; gateway: HttpLoadFigure; httpForwarder: HttpLoadFigure; gatewayVsForwarder: number };
  /** Built agent's RSS once ready and idle (one domain defined) vs a bare `node -e` process kept alive by a timer. */
  idleRss: { agentKiB: number; bareNodeKiB: number; ratio: number };
  ratios: {
    agentP50VsRaw: number;
    gatewayP50VsRaw: number;
    gatewayThroughput64VsRaw: number;
    agentThroughput64VsRaw: number;
    forwarderThroughput64VsRaw: number;
    gatewayThroughput64VsForwarder: number;
  };
}

export async function waitForLine(child: ReturnType<typeof spawn>, text: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes(text)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`exited ${code} before "${text}"`)));
  });
}

/** Raw nats.js request/reply vs the same read call through the agent and through the gateway, in one run. */
export async function benchBus(options: { quick?: boolean; profiler?: BenchProfiler } = {}): Promise<BusBenchResult> {
  const profileArgs = options.profiler?.nodeArgs ?? [];
  const n1 = options.quick ? 300 : 3000;
  const n64 = options.quick ? 3000 : 30000;
  const nats = await startNatsServer();
  const workDir = await mkdtemp(join(tmpdir(), 'virtbus-bench-'));
  const nc = await connect({ servers: nats.url });
  const responder = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./responder.ts', import.meta.url)), nats.url, 'bench.raw'], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const agent = await spawnAgent({ node: 'bench', natsUrl: nats.url, stateDir: join(workDir, 'agent'), extraArgs: ['--metrics-address', '127.0.0.1:0'], nodeArgs: [...profileArgs] });
  const port = await freePort();
  const gateway = spawn(process.execPath, [...(process.env.VIRTBUS_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.VIRTBUS_BENCH_PROFILE}`] : []), ...profileArgs, builtBundle('virtbus-gateway'), '--config', 'none', '--nats', nats.url, '--port', String(port), '--rate-limit', '0'], {
    cwd: REPO_ROOT,
    env: { ...process.env, LOG_LEVEL: 'warn', NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const gatewayOutput = stderrOf(gateway);
  let forwarder: ReturnType<typeof spawn> | undefined;
  try {
    await waitForLine(responder, 'ready');
    const client = new VirtClient(nc);
    const domain = await client.call('bench', 'domain.define', { name: 'bench-vm', driver: 'test' });
    const url = `http://127.0.0.1:${port}/v1/nodes/bench/domains/${domain.uuid}`;
    const forwarderPort = await freePort();
    forwarder = spawn(process.execPath, [...(process.env.VIRTBUS_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.VIRTBUS_BENCH_PROFILE}/forwarder`] : []), ...profileArgs, '--import', 'tsx', fileURLToPath(new URL('./forwarder.ts', import.meta.url)), nats.url, 'bench', domain.uuid, String(forwarderPort)], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const forwarderOutput = stderrOf(forwarder);
    await waitForLine(forwarder, 'ready');
    const bareNode = spawn(process.execPath, ['-e', 'setInterval(() => undefined, 1e9)'], { stdio: 'ignore' });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const idleRss = { agentKiB: await rssKiB(agent.pid), bareNodeKiB: await rssKiB(bareNode.pid!) };
    bareNode.kill('SIGTERM');
    for (let attempt = 0; ; attempt++) {
      try {
        if ((await fetch(url)).ok) break;
      } catch {
        // not listening yet
      }
      if (attempt > 300) throw new Error('gateway did not come up');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    const raw = () => nc.request('bench.raw', '{"id":"x"}', { timeout: 5000 });
    const viaAgent = () => client.call('bench', 'domain.get', { id: domain.uuid });
    // The rate limit is off (--rate-limit 0): this measures the gateway's overhead, not its throttle.
    // node:http with keep-alive: fetch's own overhead would otherwise dominate the gateway's figure.
    const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 64 });
    const httpGet = (target: string) => () =>
      new Promise<void>((resolve, reject) => {
        const request = httpRequest(target, { agent: httpAgent }, (response) => {
          response.on('data', () => undefined);
          response.on('end', () => (response.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${response.statusCode}`))));
        });
        request.on('error', reject);
        request.end();
      });
    const viaGateway = httpGet(url);
    const viaForwarder = httpGet(`http://127.0.0.1:${forwarderPort}/`);
    const paths = [raw, viaAgent, viaGateway, viaForwarder];
    for (const call of paths) await load(call, 8, Math.min(500, n1));
    // 1 in flight: the four paths interleaved in rounds, so a burst of load from elsewhere on the machine hits them alike
    const rounds1 = 5;
    const timings = paths.map(() => ({ latencies: [] as number[], wallMs: 0 }));
    for (let round_ = 0; round_ < rounds1; round_++) {
      for (const [index, call] of paths.entries()) {
        const { latencies, wallMs } = await timeCalls(call, 1, Math.ceil(n1 / rounds1));
        timings[index]!.latencies.push(...latencies);
        timings[index]!.wallMs += wallMs;
      }
    }
    const results: Record<'c1' | 'c64', LatencySummary>[] = [];
    for (const [index, call] of paths.entries()) results.push({ c1: summarize(timings[index]!.latencies, timings[index]!.wallMs), c64: await load(call, 64, n64) });
    const [rawResult, agentResult, gatewayResult, forwarderResult] = results as [Record<'c1' | 'c64', LatencySummary>, Record<'c1' | 'c64', LatencySummary>, Record<'c1' | 'c64', LatencySummary>, Record<'c1' | 'c64', LatencySummary>];
    // Alternated rounds so a burst of load from elsewhere on the machine hits both sides alike.
    const seconds = options.quick ? 2 : 4;
    const rounds: { gateway: HttpLoadFigure; httpForwarder: HttpLoadFigure }[] = [];
    for (let round_ = 0; round_ < (options.quick ? 1 : 2); round_++) {
      const gatewayRun = await httpLoadWithCpu(url, 64, seconds, { gateway: gateway.pid!, agent: agent.pid });
      const forwarderRun = await httpLoadWithCpu(`http://127.0.0.1:${forwarderPort}/`, 64, seconds, { forwarder: forwarder.pid!, agent: agent.pid });
      rounds.push({ gateway: gatewayRun, httpForwarder: forwarderRun });
    }
    const combine = (runs: HttpLoadFigure[]): HttpLoadFigure => {
      const requests = runs.reduce((sum, r) => sum + r.requests, 0);
      const cpu: Record<string, number> = {};
      for (const r of runs) for (const [name, micros] of Object.entries(r.cpuMicrosPerRequest)) cpu[name] = (cpu[name] ?? 0) + micros * r.requests;
      return {
        requests,
        seconds: runs.reduce((sum, r) => sum + r.seconds, 0),
        requestsPerSec: round(runs.reduce((sum, r) => sum + r.requestsPerSec * r.seconds, 0) / runs.reduce((sum, r) => sum + r.seconds, 0), 0),
        errors: runs.reduce((sum, r) => sum + r.errors, 0),
        cpuMicrosPerRequest: Object.fromEntries(Object.entries(cpu).map(([name, total]) => [name, round(total / Math.max(1, requests), 1)])),
      };
    };
    if (options.profiler) {
      const processes = { gateway: { name: 'gateway', pid: gateway.pid!, output: gatewayOutput }, agent: { name: 'agent', pid: agent.pid, output: agent.output }, forwarder: { name: 'forwarder', pid: forwarder.pid!, output: forwarderOutput } };
      await profileBus(options.profiler, processes, { gateway: url, forwarder: `http://127.0.0.1:${forwarderPort}/` }, { gateway: viaGateway, forwarder: viaForwarder });
    }
    const gateway64 = combine(rounds.map((r) => r.gateway));
    const forwarder64 = combine(rounds.map((r) => r.httpForwarder));
    return {
      requests: { inFlight1: n1, inFlight64: n64 },
      raw: rawResult,
      agent: agentResult,
      gateway: gatewayResult,
      httpForwarder: forwarderResult,
      http64: { generator: httpLoadGenerator(), gateway: gateway64, httpForwarder: forwarder64, gatewayVsForwarder: round(gateway64.requestsPerSec / forwarder64.requestsPerSec, 2) },
      idleRss: { ...idleRss, ratio: round(idleRss.agentKiB / idleRss.bareNodeKiB, 2) },
      ratios: {
        agentP50VsRaw: round(agentResult.c1.p50Ms / rawResult.c1.p50Ms, 2),
        gatewayP50VsRaw: round(gatewayResult.c1.p50Ms / rawResult.c1.p50Ms, 2),
        agentThroughput64VsRaw: round(agentResult.c64.throughputPerSec / rawResult.c64.throughputPerSec, 2),
        gatewayThroughput64VsRaw: round(gatewayResult.c64.throughputPerSec / rawResult.c64.throughputPerSec, 2),
        forwarderThroughput64VsRaw: round(forwarderResult.c64.throughputPerSec / rawResult.c64.throughputPerSec, 2),
        gatewayThroughput64VsForwarder: round(gatewayResult.c64.throughputPerSec / forwarderResult.c64.throughputPerSec, 2),
      },
    };
  } finally {
    gateway.kill('SIGTERM');
    forwarder?.kill('SIGTERM');
    responder.kill('SIGTERM');
    await agent.stop();
    await nc.close();
    await nats.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}

/** After the measured phases: the gateway and the agent profiled at 1 in flight and under the 64-connection load, and the forwarder in both. */
async function profileBus(profiler: BenchProfiler, p: Record<'gateway' | 'agent' | 'forwarder', ProfiledProcess>, urls: Record<'gateway' | 'forwarder', string>, calls: Record<'gateway' | 'forwarder', () => Promise<void>>): Promise<void> {
  const per = 'GET of one domain';
  for (const [row, front, call] of [
    [PROFILE_ROWS.apiP50, p.gateway, calls.gateway],
    [PROFILE_ROWS.apiP50Forwarder, p.forwarder, calls.forwarder],
  ] as const) {
    await profiler.cpu([row], [front, p.agent], async () => [{ row, per, unit: 'request', units: await repeatFor(profiler.seconds, call) }]);
  }
  for (const [row, front, url] of [
    [PROFILE_ROWS.apiThroughput, p.gateway, urls.gateway],
    [PROFILE_ROWS.apiForwarder, p.forwarder, urls.forwarder],
  ] as const) {
    await profiler.cpu([row], [front, p.agent], async () => [{ row, per, unit: 'request', units: (await httpLoad(url, 64, profiler.seconds)).requests }]);
  }
}

import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { connect as connectSocket } from 'node:net';
import { connect } from '@nats-io/transport-node';
import { join } from 'node:path';
import pino from 'pino';
import type { DomainConfig } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { buildCommandLine, QemuDriver, qemuPaths, type DomainRecord } from '@virtbus/drivers';
import { type AgentProcess, builtBundle, freePort, killQemusMentioning, REPO_ROOT, requireBinary, spawnAgent, startNatsServer, testDomainConfig } from '@virtbus/testing';
import { monotonicMicros, PROFILE_ROWS, repeatFor, stderrOf, type BenchProfiler, type ProfiledProcess } from './profile.js';
import { round, summarize, type LatencySummary } from './stats.js';

export interface QemuBenchOptions {
  /** Runs per measurement and accelerator (at least 10). */
  runs?: number;
  /** Profiles start and destroy through the gateway (TCG) after their measured runs. */
  profiler?: BenchProfiler;
}

export interface AccelBench {
  /** Bare qemu-system-x86_64 spawn → QMP answers query-status: the start floor. */
  bareSpawnToQmp: LatencySummary;
  /** Bare QEMU: QMP `quit` sent → process reaped: the destroy floor. */
  bareQuitToExit: LatencySummary;
  /** The same two with the command line QemuDriver builds for the bench's domain (its devices, sockets, -S then `cont`): QEMU's own share of the driver's time. */
  sameArgsSpawnToQmp?: LatencySummary;
  sameArgsQuitToExit?: LatencySummary;
  /** QemuDriver.start → running, in this process (no disk, no kernel: SeaBIOS only). */
  driverStart: LatencySummary;
  /** QemuDriver.destroy → shutoff (process gone), in this process. */
  driverDestroy: LatencySummary;
  /** domain.state start → running straight to the agent process over NATS (VirtClient), no gateway. */
  agentStart: LatencySummary;
  /** domain.state destroy → shutoff straight to the agent process over NATS. */
  agentDestroy: LatencySummary;
  /** `PUT …/state {action:start}` through the gateway HTTP → the reply says running (gateway + agent processes over NATS). */
  gatewayStart: LatencySummary;
  /** `PUT …/state {action:destroy}` through the gateway HTTP → the reply says shutoff. */
  gatewayDestroy: LatencySummary;
  ratios: {
    gatewayStartP50VsFloor: number;
    gatewayDestroyP50VsFloor: number;
    agentStartP50VsFloor: number;
    agentDestroyP50VsFloor: number;
    driverStartP50VsFloor: number;
    driverDestroyP50VsFloor: number;
  };
}

export interface QemuBenchResult {
  runs: number;
  tcg: AccelBench;
  kvm: AccelBench | { skipped: string };
}

/** QEMU's arguments for the floor: bare (no devices, running at once), or the command line QemuDriver builds for the bench domain. */
async function floorArgs(accel: 'kvm' | 'tcg', dir: string, sameArgs: boolean): Promise<{ args: string[]; socketPath: string; cont: boolean }> {
  const cpu = accel === 'kvm' ? 'qemu64' : 'max';
  if (!sameArgs) {
    const socketPath = join(dir, `bare-${randomUUID().slice(0, 8)}.sock`);
    return { args: ['-accel', accel, '-cpu', cpu, '-m', '64', '-nodefaults', '-no-user-config', '-display', 'none', '-qmp', `unix:${socketPath},server=on,wait=off`], socketPath, cont: false };
  }
  const paths = qemuPaths(join(dir, `same-${randomUUID().slice(0, 8)}`));
  await mkdir(paths.runDir);
  const config = testDomainConfig({ name: 'floor', driver: accel === 'kvm' ? 'kvm' : 'qemu' });
  return { args: buildCommandLine(config, paths, { accel, cpuModel: cpu }), socketPath: paths.qmpSocket, cont: true };
}

/** Spawns QEMU and times until query-status answers over QMP (after `cont` for -S), then times `quit` until the process is reaped. */
export async function bareQemu(binary: string, accel: 'kvm' | 'tcg', dir: string, sameArgs = false): Promise<{ spawnToQmpMs: number; quitToExitMs: number }> {
  const { args, socketPath, cont } = await floorArgs(accel, dir, sameArgs);
  const begin = performance.now();
  const child = spawn(binary, args, {
    stdio: 'ignore',
  });
  let exitedAt = 0;
  const exited = new Promise((resolve) =>
    child.once('exit', (code) => {
      exitedAt = performance.now();
      resolve(code);
    }),
  );
  let quitAt = 0;
  try {
    for (;;) {
      const answered = await new Promise<boolean>((resolve) => {
        const socket = connectSocket({ path: socketPath });
        let buffer = '';
        let asked = false;
        socket.on('error', () => resolve(false));
        socket.on('data', (chunk) => {
          buffer += chunk.toString();
          if (!asked && buffer.includes('"QMP"')) {
            socket.write(`{"execute":"qmp_capabilities"}\n${cont ? '{"execute":"cont"}\n' : ''}{"execute":"query-status","id":"s"}\n`);
            asked = true;
          }
          if (/"id":\s*"s"/.test(buffer)) {
            quitAt = performance.now();
            socket.end('{"execute":"quit"}\n');
            resolve(true);
          }
        });
      });
      if (answered) {
        const spawnToQmpMs = quitAt - begin;
        await exited;
        return { spawnToQmpMs, quitToExitMs: exitedAt - quitAt };
      }
      if (child.exitCode !== null) throw new Error(`bare QEMU (${accel}) exited with ${child.exitCode}`);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  } finally {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

function kvmUsable(): string | undefined {
  try {
    closeSync(openSync('/dev/kvm', 'r+'));
    return undefined;
  } catch (error) {
    return `/dev/kvm is not usable (${(error as NodeJS.ErrnoException).code})`;
  }
}

const wall = (values: number[]) => values.reduce((sum, value) => sum + value, 0);
const summary = (values: number[]) => summarize(values, wall(values));

/** A gateway process and an agent process (qemu driver) on a private nats-server, like a deployment. */
interface Stack {
  client: VirtClient;
  send(method: 'POST' | 'PUT', path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
  close(): Promise<void>;
  processes: ProfiledProcess[];
}

/** A JSON request to a gateway over a keep-alive agent: status and parsed body. */
export function httpSender(base: string, httpAgent: HttpAgent) {
  return (method: string, path: string, body?: unknown) =>
    new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const request = httpRequest(
        `${base}${path}`,
        { method, agent: httpAgent, headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
        (response) => {
          let text = '';
          response.on('data', (chunk: Buffer) => (text += chunk.toString()));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} }));
        },
      );
      request.on('error', reject);
      request.end(payload);
    });
}

async function startStack(dir: string, nodeArgs: readonly string[] = []): Promise<Stack> {
  const nats = await startNatsServer();
  const nc = await connect({ servers: nats.url });
  let agent: AgentProcess | undefined;
  let gateway: ChildProcess | undefined;
  const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 4 });
  const close = async () => {
    if (gateway && gateway.exitCode === null && gateway.signalCode === null) {
      const exited = new Promise((resolve) => gateway!.once('exit', resolve));
      gateway.kill('SIGTERM');
      await exited;
    }
    await agent?.stop();
    // Domains outlive their agent by design: a run that failed mid-cycle may have left a QEMU of ours running.
    killQemusMentioning(dir);
    httpAgent.destroy();
    await nc.close();
    await nats.stop();
  };
  try {
    agent = await spawnAgent({ node: 'bench', natsUrl: nats.url, stateDir: join(dir, 'agent'), drivers: 'qemu', extraArgs: ['--metrics-address', '127.0.0.1:0'], nodeArgs: [...nodeArgs] });
    const port = await freePort();
    gateway = spawn(process.execPath, [...nodeArgs, builtBundle('virtbus-gateway'), '--config', 'none', '--nats', nats.url, '--port', String(port), '--rate-limit', '0'], {
      cwd: REPO_ROOT,
      env: { ...process.env, LOG_LEVEL: 'warn', NODE_ENV: 'production' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const processes = [{ name: 'gateway', pid: gateway.pid!, output: stderrOf(gateway) }, { name: 'agent', pid: agent.pid, output: agent.output }];
    const send = httpSender(`http://127.0.0.1:${port}`, httpAgent);
    for (let attempt = 0; ; attempt++) {
      const ready = await send('GET', '/v1/nodes/bench').catch(() => undefined);
      if (ready?.status === 200) break;
      if (attempt > 300) throw new Error(`gateway did not come up (last: ${JSON.stringify(ready)})`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return { client: new VirtClient(nc), send, close, processes };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Start → running and destroy → shutoff of one diskless domain through the gateway HTTP API. */
async function gatewayCycler(stack: Stack, accel: 'kvm' | 'tcg'): Promise<() => Promise<{ startMs: number; destroyMs: number }>> {
  const name = `bench-${accel}`;
  const defined = await stack.send('POST', '/v1/nodes/bench/domains', { name, driver: accel === 'kvm' ? 'kvm' : 'qemu', vcpus: 1, memory: 64 });
  if (defined.status !== 201) throw new Error(`define ${name}: HTTP ${defined.status} ${JSON.stringify(defined.body)}`);
  const state = `/v1/nodes/bench/domains/${name}/state`;
  const timed = async (action: string, expected: string) => {
    const begin = performance.now();
    const reply = await stack.send('PUT', state, { action });
    const elapsed = performance.now() - begin;
    if (reply.status !== 200 || reply.body.state !== expected) throw new Error(`${action} ${name}: HTTP ${reply.status} ${JSON.stringify(reply.body)}`);
    return elapsed;
  };
  return async () => ({ startMs: await timed('start', 'running'), destroyMs: await timed('destroy', 'shutoff') });
}

/** Start → running and destroy → shutoff of one diskless domain straight to the agent over NATS. */
async function agentCycler(stack: Stack, accel: 'kvm' | 'tcg'): Promise<() => Promise<{ startMs: number; destroyMs: number }>> {
  const name = `bench-agent-${accel}`;
  await stack.client.call('bench', 'domain.define', { name, driver: accel === 'kvm' ? 'kvm' : 'qemu', vcpus: 1, memory: 64 });
  const timed = async (action: 'start' | 'destroy', expected: string) => {
    const begin = performance.now();
    const reply = await stack.client.call('bench', 'domain.state', { id: name, change: { action } }, { timeoutMs: 30_000 });
    const elapsed = performance.now() - begin;
    if (reply.state !== expected) throw new Error(`${action} ${name}: ${reply.state}`);
    return elapsed;
  };
  return async () => ({ startMs: await timed('start', 'running'), destroyMs: await timed('destroy', 'shutoff') });
}

/** QemuDriver.start → running and destroy → shutoff of one fresh diskless domain, in this process. */
async function driverCycle(driver: QemuDriver, accel: 'kvm' | 'tcg', run: number): Promise<{ startMs: number; destroyMs: number }> {
  const config: DomainConfig = testDomainConfig({
    name: `bench-${accel}-${run}`,
    driver: accel === 'kvm' ? 'kvm' : 'qemu',
  });
  let record: DomainRecord = { config, state: 'shutoff', reason: 'unknown' };
  let begin = performance.now();
  const started = await driver.start(record, { paused: false });
  const startMs = performance.now() - begin;
  record = { config, state: started.state, reason: started.reason, runtime: started.runtime ?? undefined };
  begin = performance.now();
  await driver.destroy(record);
  const destroyMs = performance.now() - begin;
  await driver.undefine({ config, state: 'shutoff', reason: 'destroyed' });
  return { startMs, destroyMs };
}

async function benchAccel(binary: string, driver: QemuDriver, stack: Stack, accel: 'kvm' | 'tcg', runs: number, dir: string, profiler?: BenchProfiler): Promise<AccelBench> {
  const figures = { spawnToQmp: [] as number[], quitToExit: [] as number[], sameSpawnToQmp: [] as number[], sameQuitToExit: [] as number[], driverStart: [] as number[], driverDestroy: [] as number[], agentStart: [] as number[], agentDestroy: [] as number[], gatewayStart: [] as number[], gatewayDestroy: [] as number[] };
  const viaGateway = await gatewayCycler(stack, accel);
  const viaAgent = await agentCycler(stack, accel);
  // One warm-up of each: the first QEMU pays for loading its binary and firmware from disk.
  await bareQemu(binary, accel, dir);
  await bareQemu(binary, accel, dir, true);
  await driverCycle(driver, accel, -1);
  await viaAgent();
  await viaGateway();
  // Interleaved, so load from other work on the machine hits the floor and virtbus alike.
  for (let run = 0; run < runs; run++) {
    const bare = await bareQemu(binary, accel, dir);
    figures.spawnToQmp.push(bare.spawnToQmpMs);
    figures.quitToExit.push(bare.quitToExitMs);
    const same = await bareQemu(binary, accel, dir, true);
    figures.sameSpawnToQmp.push(same.spawnToQmpMs);
    figures.sameQuitToExit.push(same.quitToExitMs);
    const inProcess = await driverCycle(driver, accel, run);
    figures.driverStart.push(inProcess.startMs);
    figures.driverDestroy.push(inProcess.destroyMs);
    const direct = await viaAgent();
    figures.agentStart.push(direct.startMs);
    figures.agentDestroy.push(direct.destroyMs);
    const gateway = await viaGateway();
    figures.gatewayStart.push(gateway.startMs);
    figures.gatewayDestroy.push(gateway.destroyMs);
  }
  if (profiler) await profileLifecycle(profiler, stack.processes, viaGateway);
  const result = {
    bareSpawnToQmp: summary(figures.spawnToQmp),
    bareQuitToExit: summary(figures.quitToExit),
    sameArgsSpawnToQmp: summary(figures.sameSpawnToQmp),
    sameArgsQuitToExit: summary(figures.sameQuitToExit),
    driverStart: summary(figures.driverStart),
    driverDestroy: summary(figures.driverDestroy),
    agentStart: summary(figures.agentStart),
    agentDestroy: summary(figures.agentDestroy),
    gatewayStart: summary(figures.gatewayStart),
    gatewayDestroy: summary(figures.gatewayDestroy),
  };
  return {
    ...result,
    ratios: {
      gatewayStartP50VsFloor: round(result.gatewayStart.p50Ms / result.bareSpawnToQmp.p50Ms, 2),
      gatewayDestroyP50VsFloor: round(result.gatewayDestroy.p50Ms / result.bareQuitToExit.p50Ms, 2),
      agentStartP50VsFloor: round(result.agentStart.p50Ms / result.bareSpawnToQmp.p50Ms, 2),
      agentDestroyP50VsFloor: round(result.agentDestroy.p50Ms / result.bareQuitToExit.p50Ms, 2),
      driverStartP50VsFloor: round(result.driverStart.p50Ms / result.bareSpawnToQmp.p50Ms, 2),
      driverDestroyP50VsFloor: round(result.driverDestroy.p50Ms / result.bareQuitToExit.p50Ms, 2),
    },
  };
}

/** QEMU lifecycle latencies on this host: the bare-QEMU floor, the driver in-process, and start/destroy through the gateway. */
export async function benchQemu(options: QemuBenchOptions = {}): Promise<QemuBenchResult> {
  const runs = Math.max(10, options.runs ?? 10);
  const binary = requireBinary('qemu-system-x86_64');
  // Short path: QMP sockets live below it (unix socket paths are limited to 107 bytes).
  // VIRTBUS_BENCH_DIR=/dev/shm puts the agent's durable state on tmpfs, to see what fsync costs.
  const dir = await mkdtemp(join(process.env.VIRTBUS_BENCH_DIR ?? '/tmp', 'vbb-'));
  const driver = new QemuDriver({ binary });
  await driver.init({
    node: 'bench',
    stateDir: join(dir, 'state'),
    logger: pino({ level: 'warn' }),
    observedState: () => undefined,
    saveRuntime: async () => undefined,
  });
  let stack: Stack | undefined;
  try {
    stack = await startStack(dir, options.profiler?.nodeArgs);
    const tcg = await benchAccel(binary, driver, stack, 'tcg', runs, dir, options.profiler);
    const unusable = kvmUsable();
    const kvm = unusable ? { skipped: unusable } : await benchAccel(binary, driver, stack, 'kvm', runs, dir);
    return { runs, tcg, kvm };
  } finally {
    for (const pid of driver.processes().values()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await driver.close();
    await stack?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** After the measured runs: start/destroy cycles through the gateway, each call's time window telling the two rows apart; finer samples, as the gateway spends ~1 ms of CPU on a call. */
async function profileLifecycle(profiler: BenchProfiler, processes: ProfiledProcess[], cycle: () => Promise<{ startMs: number; destroyMs: number }>): Promise<void> {
  await profiler.cpu([PROFILE_ROWS.start, PROFILE_ROWS.destroy], processes, async () => {
    const windows = { start: [] as [number, number][], destroy: [] as [number, number][] };
    // twice the usual phase: a cycle takes tens of ms, and the gateway's share of one is small
    const cycles = await repeatFor(2 * profiler.seconds, async () => {
      const from = monotonicMicros();
      const { startMs } = await cycle();
      windows.start.push([from, from + startMs * 1000]);
      windows.destroy.push([from + startMs * 1000, monotonicMicros()]);
    });
    return [
      { row: PROFILE_ROWS.start, per: 'start', unit: 'request', units: cycles, windows: windows.start },
      { row: PROFILE_ROWS.destroy, per: 'destroy', unit: 'request', units: cycles, windows: windows.destroy },
    ];
  }, { samplingIntervalUs: 100 });
}

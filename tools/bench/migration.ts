import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect as connectSocket, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from '@nats-io/transport-node';
import { Subjects, type AsyncOperation, type Domain } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { ensureTestGuest, freePort, GUEST_FLAGS, requireBinary, spawnAgent, startNatsServer, type AgentProcess, type TestGuest } from '@virtbus/testing';
import { round, summarize, type LatencySummary } from './stats.js';

export interface MigrationBenchOptions {
  quick: boolean;
}

interface RunFigures {
  /** From the request until the guest runs on the destination (wall clock). */
  wallMs: number;
  /** QEMU's own total-time and downtime from query-migrate on the source. */
  qemuTotalMs: number;
  downtimeMs: number;
}

export interface MigrationBenchResult {
  runs: number;
  memoryMiB: number;
  bare: { wall: LatencySummary; qemuTotal: LatencySummary; downtime: LatencySummary };
  virtbus: { wall: LatencySummary; qemuTotal: LatencySummary; downtime: LatencySummary };
  ratios: { wallP50: number; qemuTotalP50: number; downtimeP50: number };
}

const MEMORY_MIB = 256;
const summary = (values: number[]) => summarize(values, values.reduce((sum, value) => sum + value, 0));

/** A minimal QMP client: one command at a time, events skipped. */
class Qmp {
  private buffer = '';
  private waiters: ((line: Record<string, unknown>) => void)[] = [];

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk) => {
      this.buffer += chunk.toString();
      let newline: number;
      while ((newline = this.buffer.indexOf('\n')) >= 0) {
        const line = JSON.parse(this.buffer.slice(0, newline)) as Record<string, unknown>;
        this.buffer = this.buffer.slice(newline + 1);
        if (!('event' in line)) this.waiters.shift()?.(line);
      }
    });
  }

  static async open(path: string): Promise<Qmp> {
    for (let attempt = 0; ; attempt++) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = connectSocket({ path }, () => resolve(s));
          s.once('error', reject);
        });
        const qmp = new Qmp(socket);
        await new Promise<void>((resolve) => qmp.waiters.push(() => resolve()));
        await qmp.run('qmp_capabilities');
        return qmp;
      } catch (error) {
        if (attempt > 500) throw error;
        await sleep(10);
      }
    }
  }

  async run<T = unknown>(execute: string, args?: Record<string, unknown>): Promise<T> {
    const reply = new Promise<Record<string, unknown>>((resolve) => this.waiters.push(resolve));
    this.socket.write(`${JSON.stringify({ execute, ...(args ? { arguments: args } : {}) })}\n`);
    const answer = await reply;
    if (answer.error) throw new Error(`${execute}: ${JSON.stringify(answer.error)}`);
    return answer.return as T;
  }

  close(): void {
    this.socket.destroy();
  }
}

interface BareQemu {
  child: ChildProcess;
  qmp: Qmp;
  serial: string;
}

/** The guest as the agent runs it (same machine, accel, CPU, memory, kernel), driven over raw QMP. */
async function spawnBare(binary: string, guest: TestGuest, dir: string, name: string, incoming?: string): Promise<BareQemu> {
  const qmpPath = join(dir, `${name}.qmp`);
  const serial = join(dir, `${name}.serial`);
  const args = [
    '-machine', 'pc', '-accel', 'tcg', '-cpu', 'max', '-smp', '1', '-m', `${MEMORY_MIB}M`,
    '-nodefaults', '-no-user-config', '-display', 'none', '-S', '-no-shutdown',
    '-chardev', `socket,id=qmp,path=${qmpPath},server=on,wait=off`, '-mon', 'chardev=qmp,mode=control',
    '-chardev', `file,id=serial0,path=${serial}`, '-serial', 'chardev:serial0',
    '-kernel', guest.kernel, '-initrd', guest.initrd, '-append', `${guest.cmdline} ${GUEST_FLAGS.counter}`,
    '-device', 'virtio-balloon-pci,id=balloon0', '-device', 'pvpanic',
    ...(incoming ? ['-incoming', incoming] : []),
  ]; // prettier-ignore
  const child = spawn(binary, args, { stdio: 'ignore' });
  return { child, qmp: await Qmp.open(qmpPath), serial };
}

async function waitForCounter(read: () => Promise<string>, what: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!/COUNTER \d+/.test(await read())) {
    if (Date.now() > deadline) throw new Error(`${what}: the guest never counted`);
    await sleep(100);
  }
}

async function stopBare(bare: BareQemu): Promise<void> {
  const exited = new Promise((resolve) => bare.child.once('exit', resolve));
  if (bare.child.exitCode === null && bare.child.signalCode === null) {
    await bare.qmp.run('quit').catch(() => bare.child.kill('SIGKILL'));
    await exited;
  }
  bare.qmp.close();
}

/** Bare pair: spawn the destination with -incoming, migrate, wait for completed, cont on the destination. */
async function bareRuns(binary: string, guest: TestGuest, dir: string, runs: number): Promise<RunFigures[]> {
  let source = await spawnBare(binary, guest, dir, 'bare-0');
  await source.qmp.run('cont');
  await waitForCounter(() => readFile(source.serial, 'utf8').catch(() => ''), 'bare source');
  const figures: RunFigures[] = [];
  try {
    for (let run = 1; run <= runs; run++) {
      const begin = performance.now();
      const port = await freePort();
      const destination = await spawnBare(binary, guest, dir, `bare-${run}`, `tcp:127.0.0.1:${port}`);
      await source.qmp.run('migrate', { uri: `tcp:127.0.0.1:${port}` });
      let info: { status?: string; 'total-time'?: number; downtime?: number };
      for (;;) {
        info = await source.qmp.run('query-migrate');
        if (info.status === 'completed') break;
        if (info.status === 'failed') throw new Error('bare migration failed');
        await sleep(10);
      }
      while ((await destination.qmp.run<{ status: string }>('query-status')).status === 'inmigrate') await sleep(5);
      await destination.qmp.run('cont');
      figures.push({ wallMs: performance.now() - begin, qemuTotalMs: info['total-time'] ?? 0, downtimeMs: info.downtime ?? 0 });
      await stopBare(source);
      source = destination;
    }
  } finally {
    await stopBare(source);
  }
  return figures;
}

/** virtbus: two agents on one nats-server, domain.migrate back and forth, polling the operation. */
async function virtbusRuns(guest: TestGuest, dir: string, runs: number): Promise<RunFigures[]> {
  const nats = await startNatsServer();
  const nc = await connect({ servers: nats.url });
  const client = new VirtClient(nc);
  const agents: AgentProcess[] = [];
  let uuid = '';
  let here = 'a';
  try {
    for (const node of ['a', 'b']) agents.push(await spawnAgent({ node, natsUrl: nats.url, stateDir: join(dir, node), drivers: 'qemu' }));
    const domain = (await client.call('a', 'domain.define', {
      name: 'bench-mover',
      driver: 'qemu',
      memory: MEMORY_MIB,
      os: { kernel: guest.kernel, initrd: guest.initrd, cmdline: `${guest.cmdline} ${GUEST_FLAGS.counter}` },
    })) as Domain;
    uuid = domain.uuid;
    await client.call('a', 'domain.state', { id: uuid, change: { action: 'start' } });
    await waitForCounter(() => readFile(join(dir, 'a', 'drivers', 'qemu', uuid, 'console.log'), 'utf8').catch(() => ''), 'virtbus source');
    const figures: RunFigures[] = [];
    for (let run = 1; run <= runs; run++) {
      const there = here === 'a' ? 'b' : 'a';
      // the end comes as an operation event (no polling load on the agents while QEMU migrates)
      const ended = new Map<string, AsyncOperation>();
      let notify: (() => void) | undefined;
      const subscription = nc.subscribe(Subjects.nodeEvents(here), {
        callback: (_error, msg) => {
          const event = JSON.parse(new TextDecoder().decode(msg.data)) as { kind?: string; operation?: AsyncOperation };
          if (event.kind === 'operation' && event.operation && event.operation.status !== 'running') {
            ended.set(event.operation.id, event.operation);
            notify?.();
          }
        },
      });
      const begin = performance.now();
      const started: AsyncOperation = await client.migrate(here, uuid, { destination: there, undefineSource: true }, { timeoutMs: 30_000 });
      while (!ended.has(started.id)) await new Promise<void>((resolve) => (notify = resolve));
      const wallMs = performance.now() - begin;
      subscription.unsubscribe();
      const operation = ended.get(started.id)!;
      if (operation.status !== 'success') throw new Error(`virtbus migration ${operation.status}: ${JSON.stringify(operation.error)}`);
      figures.push({ wallMs, qemuTotalMs: operation.migration?.totalTimeMs ?? 0, downtimeMs: operation.migration?.downtimeMs ?? 0 });
      here = there;
    }
    return figures;
  } finally {
    if (uuid) await client.call(here, 'domain.state', { id: uuid, change: { action: 'destroy' } }).catch(() => undefined);
    for (const agent of agents) await agent.stop();
    await nc.close();
    await nats.stop();
  }
}

/** Live migration of the 256 MiB TCG test guest on loopback: virtbus (two agents) against a bare two-QEMU migration. */
export async function benchMigration(options: MigrationBenchOptions): Promise<MigrationBenchResult> {
  const binary = requireBinary('qemu-system-x86_64');
  const guest = await ensureTestGuest();
  const runs = options.quick ? 4 : 8;
  const dir = await mkdtemp(join(tmpdir(), 'virtbus-bench-mig-'));
  try {
    const bare = await bareRuns(binary, guest, dir, runs);
    const virtbus = await virtbusRuns(guest, dir, runs);
    const pick = (figures: RunFigures[], key: keyof RunFigures) => summary(figures.map((figure) => figure[key]));
    const b = { wall: pick(bare, 'wallMs'), qemuTotal: pick(bare, 'qemuTotalMs'), downtime: pick(bare, 'downtimeMs') };
    const v = { wall: pick(virtbus, 'wallMs'), qemuTotal: pick(virtbus, 'qemuTotalMs'), downtime: pick(virtbus, 'downtimeMs') };
    const ratio = (a: LatencySummary, floor: LatencySummary) => round(a.p50Ms / Math.max(floor.p50Ms, 0.001), 2);
    return {
      runs,
      memoryMiB: MEMORY_MIB,
      bare: b,
      virtbus: v,
      ratios: { wallP50: ratio(v.wall, b.wall), qemuTotalP50: ratio(v.qemuTotal, b.qemuTotal), downtimeP50: ratio(v.downtime, b.downtime) },
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

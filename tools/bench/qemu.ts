import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { DomainConfig } from '@virtbus/api-contract';
import { QemuDriver, type DomainRecord } from '@virtbus/drivers';
import { requireBinary } from '@virtbus/testing';
import { summarize, type LatencySummary } from './stats.js';

export interface QemuBenchOptions {
  /** Runs per measurement and accelerator (at least 10). */
  runs?: number;
}

export interface AccelBench {
  /** Bare qemu-system-x86_64 spawn → QMP answers query-status: the floor. */
  bareSpawnToQmp: LatencySummary;
  /** QemuDriver.start → running (no disk, no kernel: SeaBIOS only). */
  driverStart: LatencySummary;
  /** QemuDriver.destroy → shutoff (process gone). */
  driverDestroy: LatencySummary;
}

export interface QemuBenchResult {
  runs: number;
  tcg: AccelBench;
  kvm: AccelBench | { skipped: string };
}

/** Spawns bare QEMU and times until query-status answers over QMP, then quits it. */
async function bareSpawnToQmp(binary: string, accel: 'kvm' | 'tcg', dir: string): Promise<number> {
  const socketPath = join(dir, `bare-${randomUUID().slice(0, 8)}.sock`);
  const cpu = accel === 'kvm' ? 'qemu64' : 'max';
  const begin = performance.now();
  const child = spawn(binary, ['-accel', accel, '-cpu', cpu, '-m', '64', '-nodefaults', '-no-user-config', '-display', 'none', '-qmp', `unix:${socketPath},server=on,wait=off`], {
    stdio: 'ignore',
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    for (;;) {
      const answered = await new Promise<boolean>((resolve) => {
        const socket = connect({ path: socketPath });
        let buffer = '';
        let asked = false;
        socket.on('error', () => resolve(false));
        socket.on('data', (chunk) => {
          buffer += chunk.toString();
          if (!asked && buffer.includes('"QMP"')) {
            socket.write('{"execute":"qmp_capabilities"}\n{"execute":"query-status","id":"s"}\n');
            asked = true;
          }
          if (/"id":\s*"s"/.test(buffer)) {
            socket.end('{"execute":"quit"}\n');
            resolve(true);
          }
        });
      });
      if (answered) return performance.now() - begin;
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

async function benchAccel(binary: string, driver: QemuDriver, accel: 'kvm' | 'tcg', runs: number, dir: string): Promise<AccelBench> {
  const bare: number[] = [];
  const starts: number[] = [];
  const destroys: number[] = [];
  for (let run = 0; run < runs; run++) bare.push(await bareSpawnToQmp(binary, accel, dir));
  for (let run = 0; run < runs; run++) {
    const config: DomainConfig = {
      name: `bench-${accel}-${run}`,
      uuid: randomUUID(),
      driver: accel === 'kvm' ? 'kvm' : 'qemu',
      vcpus: 1,
      memory: 64,
      os: {},
      disks: [],
      nics: [],
      console: { type: 'serial' },
      autostart: false,
    };
    let record: DomainRecord = { config, state: 'shutoff', reason: 'unknown' };
    let begin = performance.now();
    const started = await driver.start(record, { paused: false });
    starts.push(performance.now() - begin);
    record = { config, state: started.state, reason: started.reason, runtime: started.runtime ?? undefined };
    begin = performance.now();
    await driver.destroy(record);
    destroys.push(performance.now() - begin);
    await driver.undefine({ config, state: 'shutoff', reason: 'destroyed' });
  }
  const wall = (values: number[]) => values.reduce((sum, value) => sum + value, 0);
  return { bareSpawnToQmp: summarize(bare, wall(bare)), driverStart: summarize(starts, wall(starts)), driverDestroy: summarize(destroys, wall(destroys)) };
}

/** QEMU lifecycle latencies on this host: the bare-QEMU floor and the driver's start/destroy, for TCG and KVM. */
export async function benchQemu(options: QemuBenchOptions = {}): Promise<QemuBenchResult> {
  const runs = Math.max(10, options.runs ?? 10);
  const binary = requireBinary('qemu-system-x86_64');
  const dir = await mkdtemp(join(tmpdir(), 'virtbus-bench-qemu-'));
  const driver = new QemuDriver({ binary });
  await driver.init({
    node: 'bench',
    stateDir: join(dir, 'state'),
    logger: pino({ level: 'warn' }),
    observedState: () => undefined,
    saveRuntime: async () => undefined,
  });
  try {
    const tcg = await benchAccel(binary, driver, 'tcg', runs, dir);
    const unusable = kvmUsable();
    const kvm = unusable ? { skipped: unusable } : await benchAccel(binary, driver, 'kvm', runs, dir);
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
    await rm(dir, { recursive: true, force: true });
  }
}

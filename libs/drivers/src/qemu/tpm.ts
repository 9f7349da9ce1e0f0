import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { VirtError, type DomainConfig } from '@virtbus/api-contract';
import { writeFileAtomic } from '../util/atomic.js';
import { findExecutable } from '../util/executables.js';
import { qemuOptValue, type QemuPaths } from './command-line.js';
import { isProcessAlive, readProcStat, signalProcess, spawnDetached, waitForProcessExit } from './process.js';

/** How long start waits for swtpm's control socket. */
const SWTPM_READY_MS = 5_000;

/** The swtpm binary (Debian's `swtpm` package), or OPERATION_UNSUPPORTED for a domain with a TPM on a node without it. */
export function swtpmBinary(config: DomainConfig, configured?: string): string | undefined {
  if (!config.devices?.tpm) return undefined;
  const binary = configured ?? findExecutable('swtpm');
  if (!binary || !existsSync(binary)) throw new VirtError('OPERATION_UNSUPPORTED', 'devices.tpm needs swtpm (the swtpm package) on this node');
  return binary;
}

/** The domain's TPM state (the emulated chip's NVRAM): it outlives a stop and goes with undefine. */
export function tpmStateDir(tpmDir: string, uuid: string): string {
  return join(tpmDir, uuid.toLowerCase());
}

/** QEMU's side: a TPM front end whose backend is the swtpm on the domain's socket. */
export function tpmArgs(config: DomainConfig, paths: QemuPaths): string[] {
  const tpm = config.devices?.tpm;
  if (!tpm) return [];
  return ['-chardev', `socket,id=chrtpm,path=${qemuOptValue(paths.tpmSocket)}`, '-tpmdev', 'emulator,id=tpm0,chardev=chrtpm', '-device', `${tpm.model},tpmdev=tpm0,id=tpm0dev`];
}

/** Starts the domain's swtpm (TPM 2.0) and waits for its control socket; --terminate ends it once QEMU lets go. */
export async function startSwtpm(binary: string, stateDir: string, paths: QemuPaths): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await stopSwtpm(paths);
  const args = ['socket', '--tpm2', '--tpmstate', `dir=${qemuOptValue(stateDir)},mode=0600`, '--ctrl', `type=unixio,path=${qemuOptValue(paths.tpmSocket)}`, '--terminate'];
  const child = spawnDetached(binary, args, paths.tpmLog);
  const spawned = await new Promise<Error | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined));
    child.once('error', (error) => resolve(error));
  });
  const stat = child.pid === undefined ? undefined : await readProcStat(child.pid);
  if (spawned || child.pid === undefined || !stat) throw new VirtError('OPERATION_FAILED', `could not run ${binary}: ${spawned?.message ?? 'it exited at once'}`, { cause: spawned });
  await writeFileAtomic(paths.tpmPidFile, JSON.stringify({ pid: child.pid, startTime: stat.startTime }));
  const deadline = Date.now() + SWTPM_READY_MS;
  while (!existsSync(paths.tpmSocket)) {
    if (!isProcessAlive(child.pid, stat.startTime) || Date.now() > deadline) {
      await stopSwtpm(paths);
      const log = (await readFile(paths.tpmLog, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join(' | ');
      throw new VirtError('OPERATION_FAILED', `swtpm did not open its socket: ${log || 'no output'}`);
    }
    await sleep(20);
  }
}

/** Ends the domain's swtpm (by pid and start time) and removes its socket; a no-op when none runs. */
export async function stopSwtpm(paths: QemuPaths): Promise<void> {
  const recorded = await readFile(paths.tpmPidFile, 'utf8').catch(() => undefined);
  if (recorded !== undefined) {
    let owner: { pid: number; startTime: number } | undefined;
    try {
      owner = JSON.parse(recorded) as { pid: number; startTime: number };
    } catch {
      owner = undefined;
    }
    const { pid, startTime } = owner ?? { pid: 0, startTime: 0 };
    if (owner && signalProcess(pid, startTime, 'SIGTERM') && !(await waitForProcessExit(pid, startTime, 5_000))) signalProcess(pid, startTime, 'SIGKILL');
  }
  await Promise.all([paths.tpmPidFile, paths.tpmSocket].map((path) => rm(path, { force: true })));
}

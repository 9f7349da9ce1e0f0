import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

/** The fields of /proc/<pid>/stat the driver needs (see proc(5)). */
export interface ProcStat {
  state: string;
  utimeTicks: number;
  stimeTicks: number;
  /** Clock ticks after boot: with the pid it identifies a process, so a recycled pid is never mistaken. */
  startTime: number;
  /** waitpid(2)-style status, meaningful for a zombie (Linux ≥ 3.5). */
  exitCode?: number;
}

/** USER_HZ: /proc times are in these ticks; 100 on every Linux architecture virtbus runs on. */
export const CLOCK_TICKS_PER_SECOND = 100;

export function parseProcStat(text: string): ProcStat {
  // comm may contain spaces and parentheses: fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).trim().split(' ');
  const field = (n: number) => Number(fields[n - 3]);
  const exitCode = fields.length >= 50 ? field(52) : undefined;
  return {
    state: fields[0] ?? '?',
    utimeTicks: field(14),
    stimeTicks: field(15),
    startTime: field(22),
    ...(exitCode !== undefined && Number.isFinite(exitCode) ? { exitCode } : {}),
  };
}

export function readProcStatSync(pid: number): ProcStat | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

export async function readProcStat(pid: number): Promise<ProcStat | undefined> {
  try {
    return parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** A thread's stat (a vCPU thread of QEMU, say). */
export async function readTaskStat(pid: number, tid: number): Promise<ProcStat | undefined> {
  try {
    return parseProcStat(await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Alive = the pid exists, has the same start time, and is not a zombie waiting for a slow reaper. */
export function isProcessAlive(pid: number, startTime: number): boolean {
  const stat = readProcStatSync(pid);
  return stat !== undefined && stat.startTime === startTime && stat.state !== 'Z' && stat.state !== 'X';
}

/** The exit status of a dead process if its zombie is still there to ask. */
export function zombieExitStatus(pid: number, startTime: number): { code: number | null; signal: NodeJS.Signals | null } | undefined {
  const stat = readProcStatSync(pid);
  if (!stat || stat.startTime !== startTime || stat.state !== 'Z' || stat.exitCode === undefined) return undefined;
  const termSignal = stat.exitCode & 0x7f;
  if (termSignal === 0) return { code: (stat.exitCode >> 8) & 0xff, signal: null };
  const name = Object.entries(constants.signals).find(([, number]) => number === termSignal)?.[0];
  return { code: null, signal: (name as NodeJS.Signals | undefined) ?? null };
}

/** Sends a signal only to the process we mean (pid + start time); false when it is already gone. */
export function signalProcess(pid: number, startTime: number, signal: NodeJS.Signals): boolean {
  if (!isProcessAlive(pid, startTime)) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Resolves once the process is gone or a zombie, polling /proc; false when `timeoutMs` passed first. */
export async function waitForProcessExit(pid: number, startTime: number, timeoutMs: number, intervalMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isProcessAlive(pid, startTime)) {
    if (Date.now() >= deadline) return false;
    await sleep(intervalMs);
  }
  return true;
}

/** Spawns QEMU in its own session, stdout/stderr to a log file, unreferenced: it outlives the agent. */
export function spawnDetached(binary: string, args: readonly string[], logPath: string): ChildProcess {
  const logFd = openSync(logPath, 'w', 0o600);
  try {
    const child = spawn(binary, args, { detached: true, stdio: ['ignore', logFd, logFd] });
    child.unref();
    return child;
  } finally {
    closeSync(logFd);
  }
}

import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VirtError, type DomainState, type StateReason } from '@virtbus/api-contract';

export const OUTPUT_LIMIT = 1024 * 1024;

export interface RunResult {
  exitCode: number;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: Buffer;
  truncated: boolean;
  timedOut: boolean;
}

export interface RunOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** On timeout: kill these first (the processes a tool started inside a container), then the tool. */
  beforeKill?: (pid: number) => Promise<void>;
}

/** Runs a tool without a shell, keeping at most OUTPUT_LIMIT bytes of each stream; never rejects for a non-zero exit. */
export function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // Its own process group: lxc-start's monitor must never share the agent's group or terminal.
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: options.env ?? process.env });
    const stdout = new CappedBuffer();
    const stderr = new CappedBuffer();
    let timedOut = false;
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            const pid = child.pid;
            void (async () => {
              if (pid !== undefined && options.beforeKill) await options.beforeKill(pid).catch(() => undefined);
              child.kill('SIGKILL');
            })();
          }, options.timeoutMs);
    child.on('error', (error) => {
      if (timer) clearTimeout(timer);
      reject(new VirtError('OPERATION_FAILED', `cannot run ${file}: ${error.message}`, { cause: error }));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({
        exitCode: code ?? 128 + signalNumber(signal),
        signal,
        stdout: stdout.value(),
        stderr: stderr.value(),
        truncated: stdout.truncated || stderr.truncated,
        timedOut,
      });
    });
  });
}

class CappedBuffer {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  push(chunk: Buffer): void {
    const room = OUTPUT_LIMIT - this.size;
    if (room <= 0) {
      this.truncated = true;
      return;
    }
    const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (kept.length < chunk.length) this.truncated = true;
    this.chunks.push(kept);
    this.size += kept.length;
  }

  value(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15 };

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal ? (SIGNAL_NUMBERS[signal] ?? 0) : 0;
}

/** States lxc-info prints (lxc_state_t). */
export type LxcState = 'STOPPED' | 'STARTING' | 'RUNNING' | 'STOPPING' | 'ABORTING' | 'FREEZING' | 'FROZEN' | 'THAWED';

export interface LxcInfo {
  exists: boolean;
  state: LxcState;
  pid?: number;
}

/** `lxc-info -s -p` output: `State: RUNNING` and, while running, `PID: 1234`. */
export function parseLxcInfo(text: string): { state?: LxcState; pid?: number } {
  const state = /^State:\s+([A-Z]+)\s*$/m.exec(text)?.[1] as LxcState | undefined;
  const pid = /^PID:\s+(\d+)\s*$/m.exec(text)?.[1];
  return { ...(state ? { state } : {}), ...(pid ? { pid: Number(pid) } : {}) };
}

/** libvirt state for an LXC state. */
export function domainStateOf(state: LxcState): { state: DomainState; reason: StateReason } {
  switch (state) {
    case 'RUNNING':
    case 'STARTING':
    case 'THAWED':
      return { state: 'running', reason: 'unknown' };
    case 'FREEZING':
    case 'FROZEN':
      return { state: 'paused', reason: 'user' };
    case 'STOPPING':
      return { state: 'shutdown', reason: 'user' };
    case 'ABORTING':
      return { state: 'shutoff', reason: 'failed' };
    case 'STOPPED':
      return { state: 'shutoff', reason: 'unknown' };
  }
}

/** Field 22 of /proc/<pid>/stat: start time in clock ticks since boot, so a recycled pid is told apart. */
export async function processStartTime(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const afterName = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const value = Number(afterName[19]);
    // A zombie is gone for our purposes: its container has ended.
    if (afterName[0] === 'Z' || afterName[0] === 'X') return undefined;
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Field 4 of /proc/<pid>/stat. */
export async function parentPid(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const value = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isInteger(value) && value > 0 ? value : undefined;
  } catch {
    return undefined;
  }
}

/** All descendants of a process, deepest last (from /proc/<pid>/task/<tid>/children). */
export async function descendants(pid: number): Promise<number[]> {
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const current = queue.shift()!;
    const tasks = await readdir(`/proc/${current}/task`).catch(() => [] as string[]);
    for (const task of tasks) {
      const children = await readFile(join(`/proc/${current}/task`, task, 'children'), 'utf8').catch(() => '');
      for (const child of children.split(/\s+/).filter(Boolean).map(Number)) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

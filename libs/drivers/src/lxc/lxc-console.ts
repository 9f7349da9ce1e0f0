import { spawn, type ChildProcess } from 'node:child_process';
import { open, readFile, readlink, stat } from 'node:fs/promises';
import type { ConsoleSession } from '../driver.js';
import { descendants, processStartTime, run } from './lxc-tools.js';

const HISTORY_LIMIT = 64 * 1024;
const POLL_MS = 100;
const READ_CHUNK = 256 * 1024;
/** lxc-console's escape prefix (Ctrl+b); a literal one is sent doubled. */
const ESCAPE = 0x02;
const WRITER_EXIT_GRACE_MS = 2_000;
const WRITER_RETRY_MS = 250;
const WRITER_CONNECT_ATTEMPTS = 40;
/** How long lxc-console may take from its banner to a raw terminal before keys are sent anyway. */
const RAW_WAIT_MS = 5_000;

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export interface LxcConsoleOptions {
  logPath: string;
  lxcConsole: string;
  script: string;
  /** util-linux setpriv: ties the writer's life to the agent's (parent-death signal), so a killed agent leaks no console. */
  setpriv?: string | undefined;
  lxcpath: string;
  name: string;
}

/**
 * A container's console without a terminal in the agent: output is read from LXC's console log file
 * (lxc.console.logfile, written by the container's monitor), keystrokes go in through one `lxc-console -t 0`
 * that util-linux `script` gives a pty, started on the first write and shared by every session.
 */
export class LxcConsole {
  private readonly sessions = new Set<LogTail>();
  private writer: ChildProcess | undefined;
  /** Keystrokes held until lxc-console has connected: it flushes pending input when it sets its terminal raw. */
  private pending: Buffer[] | undefined;
  private connectAttempts = 0;

  constructor(private readonly options: LxcConsoleOptions) {}

  async session(): Promise<ConsoleSession> {
    const tail = await LogTail.open(this.options.logPath);
    this.sessions.add(tail);
    tail.onEnd(() => this.sessions.delete(tail));
    return {
      history: tail.history,
      onData: (listener) => tail.dataListeners.add(listener),
      onClose: (listener) => tail.closeListeners.add(listener),
      write: (data) => this.write(data),
      close: () => tail.end(false),
    };
  }

  write(data: Buffer): void {
    const escaped: number[] = [];
    for (const byte of data) {
      escaped.push(byte);
      if (byte === ESCAPE) escaped.push(ESCAPE);
    }
    const writer = this.ensureWriter();
    if (this.pending) this.pending.push(Buffer.from(escaped));
    else writer.stdin?.write(Buffer.from(escaped));
  }

  /** Keys typed before a writer connected outlive a writer that could not connect (the monitor may still hold the console for a client that just died). */
  private retryWriter(keys: Buffer[]): void {
    if (this.connectAttempts >= WRITER_CONNECT_ATTEMPTS) return;
    this.connectAttempts += 1;
    setTimeout(() => {
      if (this.writer || this.sessions.size === 0) return;
      this.ensureWriter();
      this.pending = [...keys, ...(this.pending ?? [])];
    }, WRITER_RETRY_MS).unref();
  }

  /** The container stopped or the driver closes: sessions see their end, the writer is gone when this resolves. */
  async end(): Promise<void> {
    for (const tail of [...this.sessions]) tail.end(true);
    this.sessions.clear();
    await this.stopWriter();
  }

  private ensureWriter(): ChildProcess {
    if (this.writer && this.writer.exitCode === null && this.writer.signalCode === null) return this.writer;
    const { lxcConsole, lxcpath, name, script, setpriv } = this.options;
    const command = [lxcConsole, '-P', lxcpath, '-n', name, '-t', '0', '-e', '^b'].map(shellQuote).join(' ');
    const scriptArgs = ['-qfc', command, '/dev/null'];
    // Own process group, so ending the writer ends script and its lxc-console (hung up with script's pty) together.
    const writer = setpriv
      ? spawn(setpriv, ['--pdeathsig', 'KILL', '--', script, ...scriptArgs], { stdio: ['pipe', 'pipe', 'ignore'], detached: true })
      : spawn(script, scriptArgs, { stdio: ['pipe', 'pipe', 'ignore'], detached: true });
    this.pending = [];
    let banner = '';
    // Output is read from the log file; lxc-console's own copy only tells when it is connected.
    writer.stdout?.on('data', (chunk: Buffer) => {
      if (this.writer !== writer || !this.pending) return;
      if (banner.includes('Connected to tty')) return;
      banner += chunk.toString('latin1');
      if (!banner.includes('Connected to tty')) return;
      // lxc-console prints its banner before it makes its terminal raw with TCSAFLUSH, which drops input sent meanwhile
      void waitForRawTerminal(writer, RAW_WAIT_MS).then(() => {
        if (this.writer !== writer || !this.pending) return;
        for (const keys of this.pending) writer.stdin?.write(keys);
        this.pending = undefined;
        this.connectAttempts = 0;
      });
    });
    writer.on('error', () => undefined);
    writer.stdin?.on('error', () => undefined);
    writer.on('exit', () => {
      if (this.writer !== writer) return;
      const unsent = this.pending;
      this.writer = undefined;
      this.pending = undefined;
      if (unsent && unsent.length > 0) this.retryWriter(unsent);
    });
    this.writer = writer;
    return writer;
  }

  private async stopWriter(): Promise<void> {
    const writer = this.writer;
    this.writer = undefined;
    this.pending = undefined;
    if (!writer?.pid || writer.exitCode !== null || writer.signalCode !== null) return;
    // script puts lxc-console in a session of its own: note it (with its start time, against pid reuse) before ending script.
    const children = await Promise.all((await descendants(writer.pid)).map(async (pid) => ({ pid, started: await processStartTime(pid) })));
    const exited = new Promise<void>((resolve) => writer.once('exit', () => resolve()));
    signal(-writer.pid, 'SIGTERM');
    const timer = setTimeout(() => signal(-writer.pid!, 'SIGKILL'), WRITER_EXIT_GRACE_MS);
    await exited;
    clearTimeout(timer);
    const deadline = Date.now() + WRITER_EXIT_GRACE_MS;
    const alive = async () => (await Promise.all(children.map(async (child) => child.started !== undefined && (await processStartTime(child.pid)) === child.started ? child.pid : undefined))).filter((pid) => pid !== undefined);
    for (let left = await alive(); left.length > 0 && Date.now() < deadline + WRITER_EXIT_GRACE_MS; left = await alive()) {
      for (const pid of left) signal(pid, Date.now() < deadline ? 'SIGTERM' : 'SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, POLL_MS / 5));
    }
  }
}

/** Resolves once the writer's lxc-console has put its terminal in raw mode (or the wait is over, or it is gone). */
async function waitForRawTerminal(writer: ChildProcess, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && writer.exitCode === null && writer.signalCode === null && writer.pid) {
    for (const pid of await descendants(writer.pid)) {
      const command = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (!command.includes('lxc-console')) continue;
      const terminal = await readlink(`/proc/${pid}/fd/0`).catch(() => '');
      if (!terminal.startsWith('/dev/pts/')) continue;
      const result = await run('stty', ['-F', terminal, '-a'], { timeoutMs: 2_000 }).catch(() => undefined);
      if (result?.exitCode === 0 && /(^|\s)-icanon(;|\s|$)/.test(result.stdout.toString('utf8'))) return true;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS / 5));
  }
  return false;
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

/** Follows one log file from where a session opened it; a shrinking file (LXC truncates at lxc.console.size) restarts at 0. */
class LogTail {
  readonly dataListeners = new Set<(chunk: Buffer) => void>();
  readonly closeListeners = new Set<() => void>();
  private readonly endListeners = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;
  private reading = false;
  private ended = false;

  private constructor(
    private readonly path: string,
    private offset: number,
    readonly history: Buffer,
  ) {
    this.timer = setInterval(() => void this.poll(), POLL_MS);
    this.timer.unref();
  }

  static async open(path: string): Promise<LogTail> {
    const size = await stat(path).then((info) => info.size).catch(() => 0);
    const start = Math.max(0, size - HISTORY_LIMIT);
    const history = size > start ? await readRange(path, start, size - start) : Buffer.alloc(0);
    return new LogTail(path, start + history.length, history);
  }

  onEnd(listener: () => void): void {
    this.endListeners.add(listener);
  }

  end(notify: boolean): void {
    if (this.ended) return;
    this.ended = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (notify) for (const listener of this.closeListeners) listener();
    for (const listener of this.endListeners) listener();
    this.dataListeners.clear();
    this.closeListeners.clear();
  }

  private async poll(): Promise<void> {
    if (this.reading || this.ended) return;
    this.reading = true;
    try {
      const size = await stat(this.path).then((info) => info.size).catch(() => 0);
      if (size < this.offset) this.offset = 0;
      while (!this.ended && size > this.offset) {
        const chunk = await readRange(this.path, this.offset, Math.min(READ_CHUNK, size - this.offset));
        if (chunk.length === 0) break;
        this.offset += chunk.length;
        for (const listener of this.dataListeners) listener(chunk);
      }
    } finally {
      this.reading = false;
    }
  }
}

async function readRange(path: string, position: number, length: number): Promise<Buffer> {
  const handle = await open(path, 'r').catch(() => undefined);
  if (!handle) return Buffer.alloc(0);
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, position);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

import { connect, type Socket } from 'node:net';
import { open, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { ConsoleSession } from '../driver.js';

/** How much console output a session gets as history; the log file is trimmed back to this. */
export const CONSOLE_HISTORY_BYTES = 1024 * 1024;
const TRIM_THRESHOLD_BYTES = 2 * CONSOLE_HISTORY_BYTES;

/**
 * Keeps the last `keepBytes` of a log QEMU appends to (O_APPEND): read the tail, truncate, write it back.
 * Output QEMU appends during the few microseconds in between may be lost; returns the bytes dropped from the front.
 */
export async function trimLogTail(path: string, keepBytes: number): Promise<number> {
  const handle = await open(path, 'r+');
  try {
    const { size } = await handle.stat();
    if (size <= keepBytes) return 0;
    const tail = Buffer.alloc(keepBytes);
    const { bytesRead } = await handle.read(tail, 0, keepBytes, size - keepBytes);
    await handle.truncate(0);
    await handle.write(tail, 0, bytesRead, 0);
    return size - keepBytes;
  } finally {
    await handle.close();
  }
}

/** Reads bytes [from, to) of a file, clamped to what exists. */
async function readRange(path: string, from: number, to: number): Promise<Buffer> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch {
    return Buffer.alloc(0);
  }
  try {
    const { size } = await handle.stat();
    const end = Math.min(to, size);
    const start = Math.max(0, Math.min(from, end));
    const buffer = Buffer.alloc(end - start);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, start);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

interface SessionHooks {
  data: Set<(chunk: Buffer) => void>;
  close: Set<() => void>;
}

/**
 * The one connection to a domain's serial chardev socket, fanned out to any number of console sessions.
 * History comes from QEMU's console log (written even while no agent is connected), live data from the socket.
 */
export class ConsoleHub {
  private socket?: Socket;
  /** Position in the log file up to which output has also arrived on the socket: history ends here, live data begins. */
  private logOffset = 0;
  private trimming = false;
  private ended = false;
  private readonly sessions = new Set<SessionHooks>();

  constructor(
    private readonly socketPath: string,
    private readonly logPath: string,
    private readonly logger: Logger,
  ) {}

  /** `fresh`: QEMU was just started paused, so the log is empty; otherwise live data starts after what the log holds now. */
  async attach(fresh: boolean, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        this.socket = await new Promise<Socket>((resolve, reject) => {
          const socket = connect({ path: this.socketPath });
          socket.once('connect', () => resolve(socket));
          socket.once('error', reject);
        });
        break;
      } catch (error) {
        if (Date.now() >= deadline) throw error;
        await sleep(20);
      }
    }
    this.logOffset = fresh ? 0 : await stat(this.logPath).then((info) => info.size, () => 0);
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (error) => this.logger.debug({ err: error, socket: this.socketPath }, 'console socket error'));
    this.socket.on('close', () => this.end());
  }

  async session(): Promise<ConsoleSession> {
    if (this.ended) throw new Error('console is closed');
    const hooks: SessionHooks = { data: new Set(), close: new Set() };
    // Register before reading the file, and buffer what arrives meanwhile, so no byte is lost or doubled.
    const early: Buffer[] = [];
    const collect = (chunk: Buffer) => early.push(chunk);
    hooks.data.add(collect);
    this.sessions.add(hooks);
    const end = this.logOffset;
    const history = await readRange(this.logPath, end - CONSOLE_HISTORY_BYTES, end);
    hooks.data.delete(collect);
    const joined = Buffer.concat([history, ...early]);
    return {
      history: joined.length > CONSOLE_HISTORY_BYTES ? joined.subarray(joined.length - CONSOLE_HISTORY_BYTES) : joined,
      onData: (listener) => hooks.data.add(listener),
      onClose: (listener) => {
        if (this.ended) queueMicrotask(listener);
        else hooks.close.add(listener);
      },
      write: (data) => {
        if (!this.ended) this.socket?.write(data);
      },
      close: () => {
        this.sessions.delete(hooks);
      },
    };
  }

  /** The domain stopped or the driver is letting go: sessions see their close, QEMU keeps its socket. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.socket?.destroy();
    for (const hooks of this.sessions) for (const listener of hooks.close) listener();
    this.sessions.clear();
  }

  private onData(chunk: Buffer): void {
    this.logOffset += chunk.length;
    for (const hooks of this.sessions) for (const listener of hooks.data) listener(chunk);
    if (this.logOffset > TRIM_THRESHOLD_BYTES && !this.trimming) void this.trim();
  }

  private async trim(): Promise<void> {
    this.trimming = true;
    try {
      const dropped = await trimLogTail(this.logPath, CONSOLE_HISTORY_BYTES);
      this.logOffset = Math.max(0, this.logOffset - dropped);
    } catch (error) {
      this.logger.warn({ err: error, log: this.logPath }, 'could not trim the console log');
    } finally {
      this.trimming = false;
    }
  }
}

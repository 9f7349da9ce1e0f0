import { connect, type Socket } from 'node:net';
import { VirtError } from '@virtbus/api-contract';

/** qemu-ga's sync delimiter: it discards what it buffered before 0xFF and prefixes its guest-sync-delimited reply with one. */
const DELIMITER = 0xff;
const MAX_REPLY_BYTES = 4 * 1024 * 1024;

export interface QgaCallOptions {
  timeoutMs?: number;
}

/** The guest agent answered `{"error": …}`. */
export class QgaCommandError extends VirtError {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    desc: string,
  ) {
    super('OPERATION_FAILED', `guest agent ${command} failed: ${errorClass}: ${desc}`);
  }
}

/**
 * One session with a guest's qemu-ga over its virtio-serial channel (a unix socket QEMU serves): a guest-sync-delimited
 * handshake drops whatever an earlier session left behind, then one command at a time (qemu-ga has no request ids),
 * each bounded by a timeout. A timeout ends the session: the late answer must not be taken for the next command's.
 */
export class QgaChannel {
  private buffer = Buffer.alloc(0);
  private waiter: ((line: Buffer | Error) => void) | undefined;
  private closedWith: Error | undefined;
  private synced = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      if (this.buffer.length > MAX_REPLY_BYTES) this.fail(new VirtError('OPERATION_FAILED', `guest agent reply over ${MAX_REPLY_BYTES} bytes`));
      this.deliver();
    });
    socket.on('error', (error) => this.fail(new VirtError('GUEST_AGENT_UNRESPONSIVE', `guest agent channel: ${error.message}`, { cause: error })));
    socket.on('close', () => this.fail(new VirtError('GUEST_AGENT_UNRESPONSIVE', 'guest agent channel closed')));
  }

  /** Connects to the channel socket and synchronises with a fresh id; fails with GUEST_AGENT_UNRESPONSIVE when no agent answers. */
  static async open(path: string, options: QgaCallOptions = {}): Promise<QgaChannel> {
    const timeoutMs = options.timeoutMs ?? 5_000;
    const socket = await new Promise<Socket>((resolve, reject) => {
      const candidate = connect(path);
      const timer = setTimeout(() => {
        candidate.destroy();
        reject(new VirtError('GUEST_AGENT_UNRESPONSIVE', `guest agent channel ${path}: no connection within ${timeoutMs} ms`));
      }, timeoutMs);
      candidate.once('connect', () => {
        clearTimeout(timer);
        resolve(candidate);
      });
      candidate.once('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(
          error.code === 'ENOENT' || error.code === 'ECONNREFUSED'
            ? new VirtError('OPERATION_INVALID', 'the domain has no guest agent channel (started before it had one?)', { cause: error })
            : new VirtError('GUEST_AGENT_UNRESPONSIVE', `guest agent channel: ${error.message}`, { cause: error }),
        );
      });
    });
    const channel = new QgaChannel(socket);
    try {
      await channel.sync(timeoutMs);
    } catch (error) {
      channel.close();
      throw error;
    }
    return channel;
  }

  /** Runs one command and returns its `return` value. */
  async execute<T>(command: string, args?: Record<string, unknown>, options: QgaCallOptions = {}): Promise<T> {
    if (!this.synced) throw new VirtError('INTERNAL', 'guest agent channel used before its sync');
    const line = await this.roundTrip(Buffer.from(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}) })}\n`), command, options.timeoutMs ?? 5_000);
    return unwrap<T>(command, line);
  }

  close(): void {
    this.fail(new VirtError('GUEST_AGENT_UNRESPONSIVE', 'guest agent channel closed'));
    this.socket.destroy();
  }

  private async sync(timeoutMs: number): Promise<void> {
    const id = Math.floor(Math.random() * 2 ** 31);
    const request = Buffer.concat([Buffer.from([DELIMITER]), Buffer.from(`${JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id } })}\n`)]);
    const deadline = Date.now() + timeoutMs;
    // a stale reply of an earlier session may come first: skip lines until ours
    let line = await this.roundTrip(request, 'guest-sync-delimited', timeoutMs, true);
    while (unwrap<unknown>('guest-sync-delimited', line) !== id) line = await this.nextLine('guest-sync-delimited', Math.max(1, deadline - Date.now()));
    this.synced = true;
  }

  private roundTrip(request: Buffer, command: string, timeoutMs: number, delimited = false): Promise<Buffer> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    if (delimited) this.buffer = Buffer.alloc(0);
    this.socket.write(request);
    return this.nextLine(command, timeoutMs, delimited);
  }

  private nextLine(command: string, timeoutMs: number, delimited = false): Promise<Buffer> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        const error = new VirtError('GUEST_AGENT_UNRESPONSIVE', `guest agent: no answer to ${command} within ${timeoutMs} ms`);
        reject(error);
        this.close();
      }, timeoutMs);
      this.waiter = (line) => {
        clearTimeout(timer);
        this.waiter = undefined;
        if (line instanceof Error) reject(line);
        else resolve(line);
      };
      this.deliver(delimited);
    });
  }

  private deliver(delimited = false): void {
    if (!this.waiter) return;
    if (delimited || !this.synced) {
      const mark = this.buffer.lastIndexOf(DELIMITER);
      if (mark < 0) return;
      this.buffer = this.buffer.subarray(mark + 1);
    }
    const end = this.buffer.indexOf(0x0a);
    if (end < 0) return;
    const line = this.buffer.subarray(0, end);
    this.buffer = this.buffer.subarray(end + 1);
    if (line.toString().trim() === '') return this.deliver(delimited);
    this.waiter(line);
  }

  private fail(error: Error): void {
    this.closedWith ??= error;
    this.waiter?.(error);
  }
}

/** qemu-ga's JSON reply to `command`: its `return`, or QgaCommandError. */
export function unwrap<T>(command: string, line: Buffer): T {
  let reply: { return?: unknown; error?: { class?: string; desc?: string } };
  try {
    reply = JSON.parse(line.toString()) as typeof reply;
  } catch (error) {
    throw new VirtError('OPERATION_FAILED', `guest agent ${command}: unreadable reply`, { cause: error });
  }
  if (reply.error) throw new QgaCommandError(command, reply.error.class ?? 'GenericError', reply.error.desc ?? 'unknown error');
  return reply.return as T;
}

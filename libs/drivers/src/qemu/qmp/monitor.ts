import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { SpanKind, tracingActive, withSpan } from '@virtbus/monitoring';

/** An asynchronous QMP event (SHUTDOWN, STOP, RESUME, …) as QEMU sent it. */
export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

export interface QmpGreeting {
  QMP: { version: { qemu: { major: number; minor: number; micro: number }; package: string }; capabilities: string[] };
}

/** QEMU answered a command with `{"error": …}`. */
export class QmpCommandError extends Error {
  override readonly name = 'QmpCommandError';
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`QMP ${command} failed: ${errorClass}: ${desc}`);
  }
}

/** No reply within the command's timeout (QEMU hung or SIGSTOPped); the late reply is dropped. */
export class QmpTimeoutError extends Error {
  override readonly name = 'QmpTimeoutError';
  constructor(
    readonly command: string,
    readonly timeoutMs: number,
  ) {
    super(`QMP ${command} got no reply within ${timeoutMs} ms`);
  }
}

/** The monitor connection ended (QEMU exited or we closed it) before the reply came. */
export class QmpClosedError extends Error {
  override readonly name = 'QmpClosedError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface ExecuteOptions {
  timeoutMs?: number;
}

export interface ConnectOptions {
  /** Bound on connect + greeting + qmp_capabilities. */
  timeoutMs?: number;
  /** Default per-command timeout. */
  commandTimeoutMs?: number;
}

interface Pending {
  command: string;
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

type MonitorEvents = {
  event: [QmpEvent];
  close: [Error | undefined];
};

const DEFAULT_COMMAND_TIMEOUT_MS = 10_000;

/** One QMP connection: greeting + capabilities negotiation, id-correlated commands, event fan-out, EOF handling. */
export class QmpMonitor extends EventEmitter<MonitorEvents> {
  private buffer = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private closedWith: Error | undefined | null = null;
  private greetingResolve?: (greeting: QmpGreeting) => void;
  private greetingReject?: (error: Error) => void;
  greeting?: QmpGreeting;

  private constructor(
    private readonly socket: Socket,
    private readonly commandTimeoutMs: number,
  ) {
    super();
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (error) => this.shutdown(new QmpClosedError(`QMP socket error: ${error.message}`, { cause: error })));
    socket.on('close', () => this.shutdown(undefined));
  }

  /** Connects to QEMU's QMP socket and leaves capabilities negotiation mode. */
  static async connect(path: string, options: ConnectOptions = {}): Promise<QmpMonitor> {
    const timeoutMs = options.timeoutMs ?? 5_000;
    const socket = connect({ path });
    const monitor = new QmpMonitor(socket, options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS);
    const greeting = new Promise<QmpGreeting>((resolve, reject) => {
      monitor.greetingResolve = resolve;
      monitor.greetingReject = reject;
    });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new QmpTimeoutError('greeting', timeoutMs)), timeoutMs);
    });
    greeting.catch(() => undefined);
    try {
      monitor.greeting = await Promise.race([greeting, deadline]);
      const negotiated = monitor.execute('qmp_capabilities', undefined, { timeoutMs });
      negotiated.catch(() => undefined);
      await Promise.race([negotiated, deadline]);
      return monitor;
    } catch (error) {
      monitor.close();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  get closed(): boolean {
    return this.closedWith !== null;
  }

  /** Sends one command and resolves with its `return` value; rejects on `error`, timeout or EOF. */
  execute<T = unknown>(command: string, args?: object, options: ExecuteOptions = {}): Promise<T> {
    // A span per QMP command when tracing is on; untraced calls skip the wrapper entirely.
    if (!tracingActive()) return this.send<T>(command, args, options);
    return withSpan(`qmp ${command}`, { 'qmp.command': command }, () => this.send<T>(command, args, options), { kind: SpanKind.CLIENT });
  }

  private send<T>(command: string, args: object | undefined, options: ExecuteOptions): Promise<T> {
    if (this.closedWith !== null) return Promise.reject(new QmpClosedError(`QMP connection closed; cannot run ${command}`));
    const id = `virtbus-${this.nextId++}`;
    const timeoutMs = options.timeoutMs ?? this.commandTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpTimeoutError(command, timeoutMs));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (value: unknown) => void, reject, timer });
      const message = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
      this.socket.write(`${JSON.stringify(message)}\n`);
    });
  }

  /** Drops the connection; pending commands reject with QmpClosedError. QEMU itself keeps running. */
  close(): void {
    this.shutdown(undefined);
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let newline: number;
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line) as Record<string, unknown>;
    } catch (error) {
      this.shutdown(new QmpClosedError(`QMP sent invalid JSON: ${line.slice(0, 200)}`, { cause: error }));
      this.socket.destroy();
      return;
    }
    if ('QMP' in message) {
      this.greetingResolve?.(message as unknown as QmpGreeting);
      return;
    }
    if (typeof message.event === 'string') {
      this.emit('event', {
        event: message.event,
        data: (message.data as Record<string, unknown> | undefined) ?? {},
        timestamp: message.timestamp as QmpEvent['timestamp'],
      });
      return;
    }
    const id = typeof message.id === 'string' ? message.id : undefined;
    const pending = id === undefined ? undefined : this.pending.get(id);
    if (!pending || id === undefined) return;
    this.pending.delete(id);
    clearTimeout(pending.timer);
    if ('error' in message) {
      const error = message.error as { class?: string; desc?: string };
      pending.reject(new QmpCommandError(pending.command, error.class ?? 'GenericError', error.desc ?? 'unknown error'));
    } else {
      pending.resolve(message.return);
    }
  }

  private shutdown(error: Error | undefined): void {
    if (this.closedWith !== null) return;
    this.closedWith = error;
    const reason = error ?? new QmpClosedError('QMP connection closed (EOF)');
    this.greetingReject?.(reason);
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new QmpClosedError(`QMP connection closed before ${pending.command} answered`, { cause: reason }));
    }
    this.pending.clear();
    this.emit('close', error);
  }
}

import type { ConsoleSession } from '../driver.js';

const HISTORY_LIMIT = 64 * 1024;

/** A simulated serial line: keeps a bounded history and echoes keystrokes like a shell would. */
export class TestConsole {
  private history = Buffer.alloc(0);
  private readonly listeners = new Set<(chunk: Buffer) => void>();
  private readonly closers = new Set<() => void>();

  append(text: string | Buffer): void {
    const chunk = typeof text === 'string' ? Buffer.from(text) : text;
    this.history = Buffer.concat([this.history, chunk]);
    if (this.history.length > HISTORY_LIMIT) this.history = this.history.subarray(this.history.length - HISTORY_LIMIT);
    for (const listener of this.listeners) listener(chunk);
  }

  end(): void {
    for (const closer of this.closers) closer();
    this.listeners.clear();
    this.closers.clear();
  }

  session(): ConsoleSession {
    const listeners = new Set<(chunk: Buffer) => void>();
    const fanOut = (chunk: Buffer) => listeners.forEach((listener) => listener(chunk));
    this.listeners.add(fanOut);
    const closeListeners = new Set<() => void>();
    const onEnd = () => closeListeners.forEach((listener) => listener());
    this.closers.add(onEnd);
    return {
      history: this.history,
      onData: (listener) => listeners.add(listener),
      onClose: (listener) => closeListeners.add(listener),
      write: (data) => this.append(data.toString('utf8').replace(/\r?\n|\r/g, '\r\n')),
      close: () => {
        this.listeners.delete(fanOut);
        this.closers.delete(onEnd);
      },
    };
  }
}

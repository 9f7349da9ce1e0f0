import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';

/** A test's WebSocket: what the server sent and nobody took yet, and how it closed. */
export interface TestSocket {
  readonly socket: WebSocket;
  received(): Buffer;
  /** Drops the first `count` bytes of what was received (a reader took them). */
  consume(count: number): void;
  /** `code reason` once the server closed it. */
  closedWith(): string | undefined;
  readonly closed: Promise<void>;
  /** Closes with 1000 and waits (2 s at most) for the close to finish. */
  close(): Promise<void>;
}

/** Opens a WebSocket (resolves once open, rejects on a refused upgrade) that collects every message it gets. */
export async function openTestSocket(url: string, protocols?: string[]): Promise<TestSocket> {
  const socket = new WebSocket(url, protocols);
  let received = Buffer.alloc(0);
  let closedWith: string | undefined;
  socket.on('message', (data: Buffer) => (received = Buffer.concat([received, data])));
  const closed = new Promise<void>((resolve) =>
    socket.on('close', (code: number, reason: Buffer) => {
      closedWith = `${code} ${reason.toString()}`;
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  return {
    socket,
    received: () => received,
    consume: (count) => {
      received = received.subarray(count);
    },
    closedWith: () => closedWith,
    closed,
    close: async () => {
      socket.close(1000, 'done');
      await Promise.race([closed, sleep(2_000)]);
    },
  };
}

import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';

/** Node options that let `measureAfterGc` reach a process: its inspector on a free loopback port. */
export const INSPECT_ARGS = ['--inspect=127.0.0.1:0'];

/** Node options that leave the inspector off until `openInspector(…, { wake: pid })` sends SIGUSR1: nothing runs during a measured phase. */
export const INSPECT_LATER_ARGS = ['--inspect-port=127.0.0.1:0'];

export interface MemoryAfterGc {
  rssKiB: number;
  heapUsedKiB: number;
  externalKiB: number;
  arrayBuffersKiB: number;
}

export interface InspectorSession {
  send(method: string, params?: object): Promise<unknown>;
  close(): void;
}

const URL_PATTERN = /Debugger listening on (ws:\/\/\S+)/g;

async function inspectorUrl(output: () => string, skip: number): Promise<string> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const urls = [...output().matchAll(URL_PATTERN)].map((match) => match[1]!);
    if (urls.length > skip) return urls.at(-1)!;
    await sleep(50);
  }
  throw new Error('the process printed no inspector URL (was it started with INSPECT_ARGS or INSPECT_LATER_ARGS?)');
}

/** A DevTools-protocol session with a process's inspector; `wake` first opens an inspector started with INSPECT_LATER_ARGS. */
export async function openInspector(output: () => string, options: { wake?: number } = {}): Promise<InspectorSession> {
  const printed = [...output().matchAll(URL_PATTERN)].length;
  // SIGUSR1 opens the inspector once; a second one prints no new URL, so an already printed one is used then.
  if (options.wake !== undefined && printed === 0) process.kill(options.wake, 'SIGUSR1');
  const socket = new WebSocket(await inspectorUrl(output, options.wake !== undefined && printed === 0 ? 0 : printed - 1));
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  let id = 0;
  const pending = new Map<number, { resolve: (result: unknown) => void; reject: (error: Error) => void }>();
  socket.on('message', (data: Buffer) => {
    const message = JSON.parse(data.toString()) as { id?: number; result?: unknown; error?: { message: string } };
    if (message.id === undefined) return;
    const waiter = pending.get(message.id);
    pending.delete(message.id);
    if (message.error) waiter?.reject(new Error(message.error.message));
    else waiter?.resolve(message.result);
  });
  socket.once('close', () => {
    for (const waiter of pending.values()) waiter.reject(new Error('inspector session closed'));
    pending.clear();
  });
  return {
    send: (method, params = {}) =>
      new Promise<unknown>((resolve, reject) => {
        pending.set(++id, { resolve, reject });
        socket.send(JSON.stringify({ id, method, params }));
      }),
    close: () => socket.close(),
  };
}

/** Forces full garbage collections in the process over its inspector, then reads its RSS and V8 heap figures. */
export async function measureAfterGc(pid: number, output: () => string): Promise<MemoryAfterGc> {
  const session = await openInspector(output);
  try {
    // Twice: the first collection can leave finalizer-held objects for the second.
    await session.send('HeapProfiler.collectGarbage');
    await session.send('HeapProfiler.collectGarbage');
    const evaluated = (await session.send('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as { result: { value: string } };
    const usage = JSON.parse(evaluated.result.value) as NodeJS.MemoryUsage;
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kib = (bytes: number) => Math.round(bytes / 1024);
    return { rssKiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN), heapUsedKiB: kib(usage.heapUsed), externalKiB: kib(usage.external), arrayBuffersKiB: kib(usage.arrayBuffers) };
  } finally {
    session.close();
  }
}

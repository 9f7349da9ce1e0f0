import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';

/** Node options that let `measureAfterGc` reach a process: its inspector on a free loopback port. */
export const INSPECT_ARGS = ['--inspect=127.0.0.1:0'];

export interface MemoryAfterGc {
  rssKiB: number;
  heapUsedKiB: number;
  externalKiB: number;
  arrayBuffersKiB: number;
}

async function inspectorUrl(output: () => string): Promise<string> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const url = /Debugger listening on (ws:\/\/\S+)/.exec(output())?.[1];
    if (url) return url;
    await sleep(50);
  }
  throw new Error('the process printed no inspector URL (was it started with INSPECT_ARGS?)');
}

/** Forces full garbage collections in the process over its inspector, then reads its RSS and V8 heap figures. */
export async function measureAfterGc(pid: number, output: () => string): Promise<MemoryAfterGc> {
  const socket = new WebSocket(await inspectorUrl(output));
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  let id = 0;
  const pending = new Map<number, (result: unknown) => void>();
  socket.on('message', (data: Buffer) => {
    const message = JSON.parse(data.toString()) as { id?: number; result?: unknown };
    if (message.id !== undefined) pending.get(message.id)?.(message.result);
  });
  const send = (method: string, params: object = {}) =>
    new Promise<unknown>((resolve) => {
      pending.set(++id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  try {
    // Twice: the first collection can leave finalizer-held objects for the second.
    await send('HeapProfiler.collectGarbage');
    await send('HeapProfiler.collectGarbage');
    const evaluated = (await send('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as { result: { value: string } };
    const usage = JSON.parse(evaluated.result.value) as NodeJS.MemoryUsage;
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kib = (bytes: number) => Math.round(bytes / 1024);
    return { rssKiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN), heapUsedKiB: kib(usage.heapUsed), externalKiB: kib(usage.external), arrayBuffersKiB: kib(usage.arrayBuffers) };
  } finally {
    socket.close();
  }
}

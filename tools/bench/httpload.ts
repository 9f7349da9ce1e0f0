import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';

const run = promisify(execFile);
const WRK = '/usr/bin/wrk';
// Linux USER_HZ: /proc/<pid>/stat counts CPU time in these ticks (100 on every Linux this runs on).
const TICKS_PER_SEC = 100;

export interface HttpLoadResult {
  requests: number;
  seconds: number;
  requestsPerSec: number;
  errors: number;
}

export const httpLoadGenerator = (): 'wrk' | 'worker' => (existsSync(WRK) ? 'wrk' : 'worker');

/** CPU time (user + system) the process has used so far, in µs, from /proc/<pid>/stat. */
export async function processCpuMicros(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / TICKS_PER_SEC;
}

export async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
}

async function wrk(url: string, connections: number, seconds: number): Promise<HttpLoadResult> {
  const { stdout } = await run(WRK, ['-t1', `-c${connections}`, `-d${seconds}s`, url], { timeout: (seconds + 30) * 1000 });
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1]);
  const errors = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0) + Number(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout)?.slice(1).reduce((a, b) => a + Number(b), 0) ?? 0);
  const perSec = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  if (!Number.isFinite(requests) || !Number.isFinite(perSec)) throw new Error(`wrk output not understood:\n${stdout}`);
  return { requests, seconds, requestsPerSec: perSec, errors };
}

// The fallback: keep-alive node:http GETs from a worker thread, so the generator does not share the bench's event loop.
const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const { Agent, request } = require('node:http');
const { url, connections, seconds } = workerData;
const agent = new Agent({ keepAlive: true, maxSockets: connections });
const end = Date.now() + seconds * 1000;
let requests = 0, errors = 0;
const one = () => new Promise((resolve) => {
  const req = request(url, { agent }, (res) => { res.on('data', () => {}); res.on('end', () => { if (res.statusCode === 200) requests++; else errors++; resolve(); }); });
  req.on('error', () => { errors++; resolve(); });
  req.end();
});
const loop = async () => { while (Date.now() < end) await one(); };
const start = Date.now();
Promise.all(Array.from({ length: connections }, loop)).then(() => { agent.destroy(); parentPort.postMessage({ requests, errors, seconds: (Date.now() - start) / 1000 }); });
`;

async function workerLoad(url: string, connections: number, seconds: number): Promise<HttpLoadResult> {
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { url, connections, seconds } });
  const result = await new Promise<{ requests: number; errors: number; seconds: number }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  await worker.terminate();
  return { ...result, requestsPerSec: result.requests / result.seconds };
}

/** Drives `url` with `connections` keep-alive connections for `seconds`: Debian's wrk when installed, else a worker thread. */
export async function httpLoad(url: string, connections: number, seconds: number): Promise<HttpLoadResult> {
  return httpLoadGenerator() === 'wrk' ? wrk(url, connections, seconds) : workerLoad(url, connections, seconds);
}

/** An HTTP load run on `url` with the CPU time each process in `pids` spent on it, in µs per request. */
export async function httpLoadWithCpu(url: string, connections: number, seconds: number, pids: Record<string, number>): Promise<HttpLoadResult & { cpuMicrosPerRequest: Record<string, number> }> {
  const before = Object.fromEntries(await Promise.all(Object.entries(pids).map(async ([name, pid]) => [name, await processCpuMicros(pid)] as const)));
  const result = await httpLoad(url, connections, seconds);
  const after = await Promise.all(Object.entries(pids).map(async ([name, pid]) => [name, Math.round((await processCpuMicros(pid)) - before[name]!) / Math.max(1, result.requests)] as const));
  return { ...result, cpuMicrosPerRequest: Object.fromEntries(after.map(([name, micros]) => [name, Math.round(micros * 10) / 10])) };
}

import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { startGateway } from '@virtbus/gateway';
import { builtBundle, freePort, REPO_ROOT, spawnAgent, startNatsServer } from '@virtbus/testing';
import { stderrOf } from './profile.js';
import { median, round } from './stats.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const NODE = 'benchstor';

export interface StorageBenchOptions {
  quick: boolean;
}

export interface StorageBenchResult {
  fileMiB: number;
  runs: number;
  /** Median MiB/s of each path. */
  cpMiBs: number;
  uploadMiBs: number;
  downloadMiBs: number;
  /** Gateway throughput / cp throughput (1 = as fast as cp). */
  uploadVsCp: number;
  downloadVsCp: number;
  checksumsEqual: boolean;
  /** One large transfer each way through a gateway process: RSS growth over idle (MiB) of the agent and the gateway. */
  memory: { transferMiB: number; agentUploadMiB: number; agentDownloadMiB: number; gatewayUploadMiB: number; gatewayDownloadMiB: number; checksumEqual: boolean };
}


async function timed(work: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await work();
  return (performance.now() - start) / 1000;
}

/** PUT of a file's bytes to a volume content URL. */
export function upload(path: string, url: string, sizeBytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'PUT', headers: { 'content-type': 'application/octet-stream', 'content-length': String(sizeBytes) } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`upload: ${res.statusCode} ${body}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    createReadStream(path, { highWaterMark: MiB }).pipe(req);
  });
}

/** GET of a volume content URL into a file (node:http: a cheaper client than fetch, so the client is not the bottleneck). */
export function download(url: string, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`download: ${res.statusCode}`));
        return;
      }
      pipeline(res, createWriteStream(path)).then(resolve, reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Raw NATS bulk transfer floor: `fileMiB` in chunks of `chunkBytes` published from one connection to a subscriber on
 * another through the same server, with `window` chunks unacknowledged (the subscriber acknowledges each). MiB/s.
 */
export async function rawNatsBulkMiBs(natsUrl: string, fileMiB: number, chunkBytes = 960 * 1024, window = 8): Promise<number> {
  const sender = await connect({ servers: natsUrl });
  const receiver = await connect({ servers: natsUrl });
  try {
    const chunk = randomBytes(chunkBytes);
    const count = Math.ceil((fileMiB * MiB) / chunkBytes);
    const hash = createHash('sha256');
    receiver.subscribe('bench.raw.bulk', {
      callback: (_error, msg) => {
        hash.update(msg.data);
        msg.respond();
      },
    });
    await receiver.flush();
    const inFlight: Promise<unknown>[] = [];
    const seconds = await timed(async () => {
      for (let i = 0; i < count; i++) {
        inFlight.push(sender.request('bench.raw.bulk', chunk, { timeout: 30_000 }));
        if (inFlight.length >= window) await inFlight.shift();
      }
      await Promise.all(inFlight);
    });
    return round((count * chunkBytes) / MiB / seconds, 1);
  } finally {
    await sender.close();
    await receiver.close();
  }
}

export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** Peak RSS growth (MiB) of each pid over its value before `work`, sampled every 50 ms. */
async function rssGrowth(pids: number[], work: () => Promise<unknown>): Promise<number[]> {
  const idle = await Promise.all(pids.map(rssBytes));
  const peak = [...idle];
  let running = true;
  const sampler = (async () => {
    while (running) {
      const now = await Promise.all(pids.map(rssBytes));
      now.forEach((value, i) => (peak[i] = Math.max(peak[i]!, value)));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  try {
    await work();
  } finally {
    running = false;
    await sampler;
  }
  return peak.map((value, i) => round((value - idle[i]!) / MiB, 1));
}

/** A gateway in its own process (built code, as shipped), so its memory and CPU are its own; BENCH_CPU_PROF=<dir> profiles it. */
export async function spawnGatewayProcess(natsUrl: string, node = NODE, bundle = builtBundle('virtbus-gateway'), nodeArgs: readonly string[] = []): Promise<{ url: string; pid: number; output: () => string; stop: () => Promise<void> }> {
  const port = await freePort();
  const profile = process.env['BENCH_CPU_PROF'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['BENCH_CPU_PROF']}`] : [];
  // BENCH_GATEWAY_NODE_ARGS: node options of the gateway process (e.g. --trace-gc, printed on this process's stdout).
  profile.push(...(process.env['BENCH_GATEWAY_NODE_ARGS']?.split(' ').filter(Boolean) ?? []));
  const child = spawn(process.execPath, [...profile, ...nodeArgs, bundle, '--nats', natsUrl, '--port', String(port), '--rate-limit', '0'], {
    cwd: REPO_ROOT,
    env: { ...process.env, LOG_LEVEL: 'warn', NODE_ENV: 'production' },
    stdio: ['ignore', process.env['BENCH_GATEWAY_NODE_ARGS'] ? 'inherit' : 'ignore', 'pipe'],
  });
  // its stderr passes through; kept for a profiler's inspector URL
  const output = stderrOf(child);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      // SIGINT: a clean exit, so a --cpu-prof profile gets written.
      child.kill('SIGINT');
      await exited;
    }
  };
  const url = `http://127.0.0.1:${port}`;
  for (let attempt = 0; ; attempt++) {
    const ok = await fetch(`${url}/v1/nodes/${node}`).then((res) => res.status === 200, () => false);
    if (ok) return { url, pid: child.pid!, output, stop };
    if (attempt > 300 || child.exitCode !== null) {
      await stop();
      throw new Error('gateway process did not come up');
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Writes `mib` MiB of incompressible bytes to `path`; their sha256. */
export async function writeRandomFile(path: string, mib: number): Promise<string> {
  const handle = await open(path, 'w');
  for (let i = 0; i < mib; i++) await handle.write(randomBytes(MiB));
  await handle.close();
  return sha256Of(path);
}

export async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/**
 * Volume content through the gateway (HTTP → NATS chunks → agent → pool file, and back) against `cp` of the same file
 * on the same filesystem: one agent, one gateway, one dir pool, incompressible content.
 */
export async function benchStorage(options: StorageBenchOptions): Promise<StorageBenchResult> {
  const fileMiB = options.quick ? 64 : 256;
  const runs = options.quick ? 3 : 5;
  const workDir = await mkdtemp(join(tmpdir(), 'virtbus-bench-storage-'));
  const nats = await startNatsServer();
  const nc = await connect({ servers: nats.url });
  const agent = await spawnAgent({ node: NODE, natsUrl: nats.url, stateDir: join(workDir, 'state'), env: { VIRTBUS_METRICS_ADDRESS: 'off' } });
  const gateway = await startGateway({ nc, host: '127.0.0.1', port: 0, discoveryWaitMs: 500 });
  try {
    const source = join(workDir, 'source.img');
    const sourceSha = await writeRandomFile(source, fileMiB);
    const url = `${gateway.url}/v1/nodes/${NODE}/storage-pools/default/volumes/bench.raw/content`;
    const copy = join(workDir, 'state', 'pools', 'default', 'cp-copy.img');
    const back = join(workDir, 'downloaded.img');
    const cp: number[] = [];
    const up: number[] = [];
    const down: number[] = [];
    let checksumsEqual = true;
    // Interleaved run by run so cache and load drift hit every path alike.
    for (let i = 0; i < runs; i++) {
      cp.push(fileMiB / (await timed(() => run('cp', [source, copy]))));
      await rm(copy);
      up.push(fileMiB / (await timed(() => upload(source, `${url}?create=true`, fileMiB * MiB))));
      down.push(fileMiB / (await timed(() => download(url, back))));
      checksumsEqual &&= (await sha256Of(back)) === sourceSha;
      await rm(back);
    }
    // Memory: one large transfer each way through a gateway process (2 GiB; 512 MiB with --quick).
    const transferMiB = options.quick ? 512 : 2048;
    const big = join(workDir, 'big.img');
    const bigSha = await writeRandomFile(big, transferMiB);
    const gatewayProcess = await spawnGatewayProcess(nats.url);
    let memory: StorageBenchResult['memory'];
    try {
      const bigUrl = `${gatewayProcess.url}/v1/nodes/${NODE}/storage-pools/default/volumes/big.raw/content`;
      const [agentUploadMiB, gatewayUploadMiB] = await rssGrowth([agent.pid, gatewayProcess.pid], () => upload(big, `${bigUrl}?create=true`, transferMiB * MiB));
      await rm(big);
      const [agentDownloadMiB, gatewayDownloadMiB] = await rssGrowth([agent.pid, gatewayProcess.pid], () => download(bigUrl, big));
      memory = { transferMiB, agentUploadMiB: agentUploadMiB!, agentDownloadMiB: agentDownloadMiB!, gatewayUploadMiB: gatewayUploadMiB!, gatewayDownloadMiB: gatewayDownloadMiB!, checksumEqual: (await sha256Of(big)) === bigSha };
      await rm(big);
    } finally {
      await gatewayProcess.stop();
    }
    const cpMiBs = median(cp);
    const uploadMiBs = median(up);
    const downloadMiBs = median(down);
    return {
      fileMiB,
      runs,
      cpMiBs: round(cpMiBs, 1),
      uploadMiBs: round(uploadMiBs, 1),
      downloadMiBs: round(downloadMiBs, 1),
      uploadVsCp: round(uploadMiBs / cpMiBs, 3),
      downloadVsCp: round(downloadMiBs / cpMiBs, 3),
      checksumsEqual,
      memory,
    };
  } finally {
    await gateway.close();
    await agent.stop();
    await nc.close();
    await nats.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}

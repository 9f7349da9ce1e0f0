import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { startGateway } from '@virtbus/gateway';
import { spawnAgent, startNatsServer } from '@virtbus/testing';
import { round } from './stats.js';

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
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function timed(work: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await work();
  return (performance.now() - start) / 1000;
}

function upload(path: string, url: string, sizeBytes: number): Promise<void> {
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

async function download(url: string, path: string): Promise<void> {
  const response = await fetch(url);
  if (response.status !== 200 || !response.body) throw new Error(`download: ${response.status}`);
  await pipeline(Readable.fromWeb(response.body as never), createWriteStream(path));
}

async function sha256Of(path: string): Promise<string> {
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
    const handle = await open(source, 'w');
    for (let i = 0; i < fileMiB; i++) await handle.write(randomBytes(MiB));
    await handle.close();
    const sourceSha = await sha256Of(source);
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
      up.push(fileMiB / (await timed(() => upload(source, url, fileMiB * MiB))));
      down.push(fileMiB / (await timed(() => download(url, back))));
      checksumsEqual &&= (await sha256Of(back)) === sourceSha;
      await rm(back);
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
    };
  } finally {
    await gateway.close();
    await agent.stop();
    await nc.close();
    await nats.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}

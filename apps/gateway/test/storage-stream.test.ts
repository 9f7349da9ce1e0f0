import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { AsyncOperation, StorageVolume } from '@virtbus/api-contract';
import { type AgentProcess, type NatsServerHandle, spawnAgent, startNatsServer, tearDown } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type GatewayApp } from '../src/index.js';

const run = promisify(execFile);
const NODE = 'streamer';
const MiB = 1024 * 1024;
const FILE_MIB = 200;

let nats: NatsServerHandle;
let nc: NatsConnection;
let agent: AgentProcess;
let app: GatewayApp;
let base: string;
let workDir: string;
let sourcePath: string;
let sourceSha = '';

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** Samples the agent's RSS every 50 ms while `work` runs; returns the work's result and the peak. */
async function withRssPeak<T>(work: () => Promise<T>): Promise<{ result: T; peak: number }> {
  let peak = await rssBytes(agent.pid);
  let running = true;
  const sampler = (async () => {
    while (running) {
      peak = Math.max(peak, await rssBytes(agent.pid));
      await sleep(50);
    }
  })();
  try {
    return { result: await work(), peak };
  } finally {
    running = false;
    await sampler;
  }
}

function upload(path: string, url: string, abortAfterBytes?: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const length = String(FILE_MIB * MiB);
    const req = httpRequest(url, { method: 'PUT', headers: { 'content-type': 'application/octet-stream', 'content-length': length } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const source = createReadStream(path, { highWaterMark: MiB });
    let sent = 0;
    source.on('data', (chunk) => {
      sent += chunk.length;
      if (abortAfterBytes !== undefined && sent >= abortAfterBytes) {
        source.destroy();
        req.destroy();
        resolve({ status: 0, body: 'aborted' });
      }
    });
    source.pipe(req);
  });
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

beforeAll(async () => {
  nats = await startNatsServer();
  workDir = await mkdtemp(join(tmpdir(), 'virtbus-stream-test-'));
  nc = await connect({ servers: nats.url });
  agent = await spawnAgent({ node: NODE, natsUrl: nats.url, stateDir: join(workDir, 'state'), env: { VIRTBUS_METRICS_ADDRESS: 'off' } });
  app = await buildApp({ nc, discoveryWaitMs: 500 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  // Incompressible content, written in 1 MiB pieces so the test itself stays small in memory.
  sourcePath = join(workDir, 'source.img');
  const handle = await open(sourcePath, 'w');
  const hash = createHash('sha256');
  for (let i = 0; i < FILE_MIB; i++) {
    const piece = randomBytes(MiB);
    hash.update(piece);
    await handle.write(piece);
  }
  await handle.close();
  sourceSha = hash.digest('hex');
});

afterAll(() => tearDown(app, agent, nc, nats, workDir));

describe('volume content through the gateway over NATS', () => {
  it(`uploads and downloads ${FILE_MIB} MiB with equal sha256 while the agent's memory stays bounded`, async () => {
    const volumeUrl = `${base}/v1/nodes/${NODE}/storage-pools/default/volumes/image.raw`;
    const cpStart = performance.now();
    await run('cp', [sourcePath, join(workDir, 'cp-copy.img')]);
    const cpSeconds = (performance.now() - cpStart) / 1000;
    await rm(join(workDir, 'cp-copy.img'));

    const idleRss = await rssBytes(agent.pid);
    const upStart = performance.now();
    const { result: uploaded, peak: uploadPeak } = await withRssPeak(() => upload(sourcePath, `${volumeUrl}/content?create=true`));
    const upSeconds = (performance.now() - upStart) / 1000;
    expect(uploaded.status, uploaded.body).toBe(200);
    const operation = JSON.parse(uploaded.body) as AsyncOperation;
    expect(operation).toMatchObject({
      status: 'success',
      progress: { percent: 100, bytesTotal: FILE_MIB * MiB },
      result: { sizeBytes: FILE_MIB * MiB, sha256: sourceSha },
    });

    const volume = (await (await fetch(volumeUrl)).json()) as StorageVolume;
    expect(volume).toMatchObject({ format: 'raw', capacityBytes: FILE_MIB * MiB });
    expect(await sha256Of(volume.path)).toBe(sourceSha);

    const downloadPath = join(workDir, 'downloaded.img');
    const downStart = performance.now();
    const { result: response, peak: downloadPeak } = await withRssPeak(async () => {
      const res = await fetch(`${volumeUrl}/content`);
      expect(res.status).toBe(200);
      await pipeline(Readable.fromWeb(res.body as never), createWriteStream(downloadPath));
      return res;
    });
    const downSeconds = (performance.now() - downStart) / 1000;
    expect((await stat(downloadPath)).size).toBe(FILE_MIB * MiB);
    expect(await sha256Of(downloadPath)).toBe(sourceSha);
    const downloadOp = (await (await fetch(`${base}/v1/nodes/${NODE}/operations/${response.headers.get('x-virtbus-operation')}`)).json()) as AsyncOperation;
    expect(downloadOp).toMatchObject({ status: 'success', result: { sha256: sourceSha, sizeBytes: FILE_MIB * MiB } });

    const growth = Math.max(uploadPeak, downloadPeak) - idleRss;
    const mibps = (seconds: number) => FILE_MIB / seconds;
    console.log(
      `storage-stream: ${FILE_MIB} MiB — cp ${mibps(cpSeconds).toFixed(0)} MiB/s; upload ${mibps(upSeconds).toFixed(0)} MiB/s ` +
        `(cp/upload time ratio ${(upSeconds / cpSeconds).toFixed(1)}x); download ${mibps(downSeconds).toFixed(0)} MiB/s ` +
        `(ratio ${(downSeconds / cpSeconds).toFixed(1)}x); agent RSS idle ${(idleRss / MiB).toFixed(0)} MiB, ` +
        `peak upload ${(uploadPeak / MiB).toFixed(0)} MiB, peak download ${(downloadPeak / MiB).toFixed(0)} MiB`,
    );
    expect(growth).toBeLessThan(100 * MiB);
  });

  it('drops a partial new volume when the client disconnects mid-upload', async () => {
    const volumeUrl = `${base}/v1/nodes/${NODE}/storage-pools/default/volumes/partial.raw`;
    await upload(sourcePath, `${volumeUrl}/content?create=true`, 20 * MiB);
    let operation: AsyncOperation | undefined;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const { operations } = (await (await fetch(`${base}/v1/nodes/${NODE}/operations`)).json()) as { operations: AsyncOperation[] };
      operation = operations.find((op) => op.resources.volume === 'partial.raw');
      if (operation && operation.status !== 'running') break;
      await sleep(50);
    }
    expect(operation?.status).toBe('failure');
    expect((await fetch(volumeUrl)).status).toBe(404);
    const pool = join(workDir, 'state', 'pools', 'default');
    const { stdout } = await run('ls', ['-A', pool]);
    expect(stdout.split('\n').filter(Boolean)).toEqual(['image.raw']);
  });

  it('refuses a traversal name in the URL with 400 INVALID_ARG', async () => {
    // A bare `..` never reaches a route: URL parsing resolves it; the agent test covers it on the bus.
    for (const name of ['.hidden', 'a..b', 'a/b', '..x/../y']) {
      const res = await fetch(`${base}/v1/nodes/${NODE}/storage-pools/default/volumes/${encodeURIComponent(name)}/content`, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream' },
        body: 'x',
      });
      expect(res.status, name).toBe(400);
      expect(((await res.json()) as { code: string }).code).toBe('INVALID_ARG');
    }
  });
});


describe('volume content over a server with a small max_payload', () => {
  const SMALL = 'smallpay';
  let smallNats: NatsServerHandle;
  let smallNc: NatsConnection;
  let smallAgent: AgentProcess;
  let smallApp: GatewayApp;
  let smallDir: string;

  beforeAll(async () => {
    smallNats = await startNatsServer({ config: 'max_payload: 262144' });
    smallDir = await mkdtemp(join(tmpdir(), 'virtbus-stream-small-'));
    smallNc = await connect({ servers: smallNats.url });
    smallAgent = await spawnAgent({ node: SMALL, natsUrl: smallNats.url, stateDir: join(smallDir, 'state'), env: { VIRTBUS_METRICS_ADDRESS: 'off' } });
    smallApp = await buildApp({ nc: smallNc, discoveryWaitMs: 500 });
  });

  afterAll(() => tearDown(smallApp, smallAgent, smallNc, smallNats, smallDir));

  it('sizes chunks under the server limit, so 3 MiB go up and come back with equal sha256', async () => {
    const content = randomBytes(3 * MiB + 12_345);
    const sha = createHash('sha256').update(content).digest('hex');
    const url = `/v1/nodes/${SMALL}/storage-pools/default/volumes/small.raw/content`;
    const up = await smallApp.inject({ method: 'PUT', url: `${url}?create=true`, headers: { 'content-type': 'application/octet-stream' }, payload: content });
    expect(up.statusCode, up.body).toBe(200);
    expect(up.json<AsyncOperation>()).toMatchObject({ status: 'success', result: { sizeBytes: content.length, sha256: sha } });
    const down = await smallApp.inject({ method: 'GET', url });
    expect(down.statusCode).toBe(200);
    expect(createHash('sha256').update(down.rawPayload).digest('hex')).toBe(sha);
  });
});

// A/B of gateway bundles under wrk (64 connections, then the p50 at 1): GW_BUNDLES=a.mjs,b.mjs (built gateways), the bare forwarder too, ROUNDS (3) × SECONDS (3) each, alternated; prints req/s and CPU µs/req per round and the medians.
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { VirtClient } from '@virtbus/client';
import { freePort, REPO_ROOT, spawnAgent, startNatsServer } from '@virtbus/testing';
import { waitForLine } from './bus.js';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { processCpuMicros } from './httpload.js';
import { load, median } from './stats.js';

const run = promisify(execFile);
const bundles = (process.env['GW_BUNDLES'] ?? '').split(',').filter(Boolean);
const rounds = Number(process.env['ROUNDS'] ?? 3);
const seconds = Number(process.env['SECONDS'] ?? 3);
const nats = await startNatsServer();
const work = await mkdtemp(join(tmpdir(), 'gwab-'));
const agent = await spawnAgent({ node: 'bench', natsUrl: nats.url, stateDir: join(work, 'agent') });
const nc = await connect({ servers: nats.url });
const domain = await new VirtClient(nc).call('bench', 'domain.define', { name: 'bench-vm', driver: 'test' });
const fronts: { name: string; url: string; child: ReturnType<typeof spawn> }[] = [];
for (const bundle of bundles) {
  const port = await freePort();
  const child = spawn(process.execPath, [bundle, '--config', 'none', '--nats', nats.url, '--port', String(port), '--rate-limit', '0'], {
    cwd: REPO_ROOT,
    env: { ...process.env, LOG_LEVEL: 'warn', NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  fronts.push({ name: bundle, url: `http://127.0.0.1:${port}/v1/nodes/bench/domains/${domain.uuid}`, child });
}
const forwarderPort = await freePort();
const forwarder = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./forwarder.ts', import.meta.url)), nats.url, 'bench', domain.uuid, String(forwarderPort)], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
await waitForLine(forwarder, 'ready');
fronts.push({ name: 'forwarder', url: `http://127.0.0.1:${forwarderPort}/`, child: forwarder });
for (const front of fronts) {
  for (;;) {
    try {
      if ((await fetch(front.url)).ok) break;
    } catch {
      // not yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await run('/usr/bin/wrk', ['-t1', '-c64', '-d1s', front.url]);
  if (process.env['AB_HEADERS']) {
    const response = await fetch(front.url);
    console.log(front.name, response.status, [...response.headers].map(([key, value]) => `${key}: ${value}`).join('; '), (await response.text()).length, 'bytes');
  }
}
const results = new Map<string, { perSec: number; cpu: number; p50Ms: number }[]>();
const ms = (text: string | undefined) => (text === undefined ? Number.NaN : text.endsWith('us') ? Number.parseFloat(text) / 1000 : text.endsWith('ms') ? Number.parseFloat(text) : Number.parseFloat(text) * 1000);
for (let round = 0; round < rounds; round++) {
  for (const front of fronts) {
    const cpu0 = await processCpuMicros(front.child.pid!);
    const { stdout } = await run('/usr/bin/wrk', ['-t1', '-c64', `-d${seconds}s`, front.url]);
    const cpu1 = await processCpuMicros(front.child.pid!);
    const requests = Number(/(\d+) requests in/.exec(stdout)?.[1]);
    // p50 at 1 connection (wrk --latency), the latency figure next to the throughput one
    const { stdout: single } = await run('/usr/bin/wrk', ['-t1', '-c1', '--latency', `-d${Math.max(1, Math.round(seconds / 2))}s`, front.url]);
    const figure = { perSec: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]), cpu: (cpu1 - cpu0) / requests, p50Ms: ms(/\s50%\s+([\d.]+\w+)/.exec(single)?.[1]) };
    results.set(front.name, [...(results.get(front.name) ?? []), figure]);
    if (process.env['AB_NODE_CLIENT']) {
      // the bus bench's own c1 client (node:http keep-alive), for comparison with wrk's p50
      const agentHttp = new HttpAgent({ keepAlive: true, maxSockets: 1 });
      const get = () =>
        new Promise<void>((resolve, reject) => {
          const req = httpRequest(front.url, { agent: agentHttp }, (response) => {
            response.on('data', () => undefined);
            response.on('end', () => resolve());
          });
          req.on('error', reject);
          req.end();
        });
      await load(get, 1, 100);
      console.log(`  node:http c1 p50 ${front.name}: ${(await load(get, 1, 1000)).p50Ms} ms`);
      agentHttp.destroy();
    }
    console.log(`round ${round} ${front.name}: ${figure.perSec} req/s, ${figure.cpu.toFixed(1)} µs/req at 64; p50 ${figure.p50Ms} ms at 1`);
  }
}
for (const [name, figures] of results) console.log(`median ${name}: ${median(figures.map((f) => f.perSec))} req/s, ${median(figures.map((f) => f.cpu)).toFixed(1)} µs/req at 64; p50 ${median(figures.map((f) => f.p50Ms))} ms at 1`);
for (const front of fronts) front.child.kill('SIGTERM');
await agent.stop();
await nc.close();
await nats.stop();
await rm(work, { recursive: true, force: true });
process.exit(0);

// Gateway CPU profile under wrk: one agent (test driver), the built gateway with --cpu-prof (PROF_FORWARDER=1: the bare forwarder), `wrk -c$PROF_CONNS` (64) on domain.get for PROF_SECONDS (5); PROF_DIR (/tmp/gateway-prof) gets the profile; prints self time by function and by package.

import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { VirtClient } from '@virtbus/client';
import { builtBundle, freePort, REPO_ROOT, spawnAgent, startNatsServer } from '@virtbus/testing';
import { processCpuMicros } from './httpload.js';
import { bundleModuleStarts, moduleAtLine } from './profile-summary.js';

const run = promisify(execFile);
const dir = process.env['PROF_DIR'] ?? '/tmp/gateway-prof';
const seconds = Number(process.env['PROF_SECONDS'] ?? 5);
const connections = process.env['PROF_CONNS'] ?? '64';
const nats = await startNatsServer();
const work = await mkdtemp(join(tmpdir(), 'gwprof-'));
const agent = await spawnAgent({ node: 'bench', natsUrl: nats.url, stateDir: join(work, 'agent') });
const nc = await connect({ servers: nats.url });
const domain = await new VirtClient(nc).call('bench', 'domain.define', { name: 'bench-vm', driver: 'test' });
const port = await freePort();
const prof = process.env['PROF_OFF'] ? [] : ['--cpu-prof', `--cpu-prof-dir=${dir}`];
// PROF_FORWARDER=1: the bare node:http forwarder (tools/bench/forwarder.ts) instead of the gateway, for the same breakdown
const forwarder = process.env['PROF_FORWARDER'] === '1';
const gateway = forwarder
  ? spawn(process.execPath, [...prof, '--import', 'tsx', fileURLToPath(new URL('./forwarder.ts', import.meta.url)), nats.url, 'bench', domain.uuid, String(port)], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
  : spawn(process.execPath, [...prof, builtBundle('virtbus-gateway'), '--config', 'none', '--nats', nats.url, '--port', String(port), '--rate-limit', '0'], {
      cwd: REPO_ROOT,
      env: { ...process.env, LOG_LEVEL: 'warn', NODE_ENV: 'production' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
const url = forwarder ? `http://127.0.0.1:${port}/` : `http://127.0.0.1:${port}/v1/nodes/bench/domains/${domain.uuid}`;
for (;;) {
  try {
    if ((await fetch(url)).ok) break;
  } catch {
    // not yet
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
}
await run('/usr/bin/wrk', ['-t1', '-c64', '-d1s', url]);
// CLOCK_MONOTONIC µs, the clock of the profile's sample times: only samples under the timed load count.
const loadFrom = Number(process.hrtime.bigint() / 1000n);
const cpu0 = await processCpuMicros(gateway.pid!);
const { stdout } = await run('/usr/bin/wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, url]);
const cpu1 = await processCpuMicros(gateway.pid!);
const loadTo = Number(process.hrtime.bigint() / 1000n);
const requests = Number(/(\d+) requests in/.exec(stdout)?.[1]);
console.log(`${requests} requests, ${/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]} req/s, gateway CPU ${((cpu1 - cpu0) / requests).toFixed(1)} µs/req`);
const exited = new Promise((resolve) => gateway.once('exit', resolve));
gateway.kill(forwarder ? 'SIGTERM' : 'SIGINT');
await exited;
await agent.stop();
await nc.close();
await nats.stop();
await rm(work, { recursive: true, force: true });
if (prof.length === 0) process.exit(0);
// the newest main-thread profile (tsx's loader thread writes a small one of its own)
const candidates = await Promise.all((await readdir(dir)).filter((name) => name.endsWith('.cpuprofile')).map(async (name) => ({ name, stat: await stat(join(dir, name)) })));
const newest = Math.max(...candidates.map((c) => c.stat.mtimeMs));
const file = candidates.filter((c) => c.stat.mtimeMs > newest - 5000).sort((a, b) => b.stat.size - a.stat.size)[0]!.name;
interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount: number; children?: number[] }
const profile = JSON.parse(await readFile(join(dir, file), 'utf8')) as { nodes: Node[]; startTime: number; samples: number[]; timeDeltas: number[] };
const hits = new Map<number, number>();
let at = profile.startTime;
profile.samples.forEach((id, i) => {
  at += profile.timeDeltas[i]!;
  if (at >= loadFrom && at <= loadTo) hits.set(id, (hits.get(id) ?? 0) + 1);
});
for (const node of profile.nodes) node.hitCount = hits.get(node.id) ?? 0;
// esbuild marks each module of the bundle with a `// <path>` line: a sample's line names its package
const starts = bundleModuleStarts(await readFile(builtBundle('virtbus-gateway'), 'utf8'));
const packageAt = (line: number): string => moduleAtLine(starts, line) ?? 'bundle';
const total = profile.nodes.reduce((sum, node) => sum + node.hitCount, 0);
const self = new Map<string, number>();
const byFile = new Map<string, number>();
for (const node of profile.nodes) {
  const where = node.callFrame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/');
  const key = `${node.callFrame.functionName || '(anon)'} ${where}:${node.callFrame.lineNumber}`;
  self.set(key, (self.get(key) ?? 0) + node.hitCount);
  const inModules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(node.callFrame.url)?.[1] ?? /\/((?:apps|libs|tools)\/[^/]+)\//.exec(node.callFrame.url)?.[1];
  const area = inModules ? inModules : where.startsWith('dist/') ? packageAt(node.callFrame.lineNumber) : where.startsWith('node:') ? where.split(':')[1]!.replace(/^internal\//, '').split('/')[0]! : node.callFrame.functionName || '(native)';
  byFile.set(area, (byFile.get(area) ?? 0) + node.hitCount);
}
console.log(`profile ${join(dir, file)}: ${total} samples under load`);
const parent = new Map<number, number>();
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
// inclusive share of each function name (counted once per stack)
const inclusive = new Map<string, number>();
for (const node of profile.nodes) {
  if (!node.hitCount) continue;
  const seen = new Set<string>();
  for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
    const name = byId.get(id)!.callFrame.functionName || '(anon)';
    if (!seen.has(name)) inclusive.set(name, (inclusive.get(name) ?? 0) + node.hitCount);
    seen.add(name);
  }
}
const watch = (process.env['PROF_WATCH'] ?? 'runPreParsing,preValidation,preHandler,onResponse,onSend,handler,call,callAgent,request,publish,withSpan,validate,serialize,onRequest,checkRole,parserOnIncoming,_finish,end,writeHead,send,onSendEnd,routeHandler,handleRequest').split(',');
console.log('--- inclusive: ' + watch.map((name) => `${name} ${((100 * (inclusive.get(name) ?? 0)) / total).toFixed(1)}%`).join(', '));
for (const [key, hits] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log(`${((100 * hits) / total).toFixed(1).padStart(5)}% ${key}`);
console.log('--- self time by package (µs/req: the process CPU time per request shared out by non-idle samples)');
const microsPerSample = (cpu1 - cpu0) / Math.max(1, total - (byFile.get('(idle)') ?? 0)) / requests;
for (const [key, hits] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 24)) console.log(`${((100 * hits) / total).toFixed(1).padStart(5)}% ${key === '(idle)' ? '' : `${(hits * microsPerSample).toFixed(1).padStart(5)} µs/req `}${key}`);
process.exit(0);

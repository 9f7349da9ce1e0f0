// Volume stream probe: PUT/GET of PROBE_MIB (256) MiB PROBE_RUNS (3) times through a gateway process, each process's CPU ms per phase, and the raw NATS floor; PROBE_PROF=<dir> writes --cpu-prof of agent and gateway.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { connect } from '@nats-io/transport-node';
import { builtBundle, freePort, REPO_ROOT, spawnAgent, startNatsServer } from '@virtbus/testing';
import { download, sha256Of, upload } from './storage.js';

const MiB = 1024 * 1024;
const fileMiB = Number(process.env.PROBE_MIB ?? 256);
const prof = process.env.PROBE_PROF;
const work = await mkdtemp(join(tmpdir(), 'probe-'));
const nats = await startNatsServer();
const profArgs = (name: string) => (prof ? ['--cpu-prof', '--cpu-prof-dir', join(prof, name)] : []);
const agent = await spawnAgent({ node: 'probe', natsUrl: nats.url, stateDir: join(work, 'state'), nodeArgs: profArgs('agent'), env: { VIRTBUS_METRICS_ADDRESS: 'off' } });
const port = await freePort();
const gw = spawn(process.execPath, [...profArgs('gateway'), ...(process.env.PROBE_GW_ARGS ?? '').split(' ').filter(Boolean), builtBundle('virtbus-gateway'), '--nats', nats.url, '--port', String(port), '--rate-limit', '0'], { cwd: REPO_ROOT, env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', process.env.PROBE_GW_ARGS ? 'inherit' : 'ignore', 'inherit'] });
const base = `http://127.0.0.1:${port}`;
for (let i = 0; i < 300; i++) {
  if (await fetch(`${base}/v1/nodes/probe`).then((r) => r.status === 200, () => false)) break;
  await new Promise((r) => setTimeout(r, 100));
}
const src = join(work, 'src.img');
const h = await open(src, 'w');
for (let i = 0; i < fileMiB; i++) await h.write(randomBytes(MiB));
await h.close();
const sha = await sha256Of(src);
const url = `${base}/v1/nodes/probe/storage-pools/default/volumes/p.raw/content`;
const back = join(work, 'back.img');
const cpu = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) * 10; };
const pids = () => ({ nats: cpu(nats.pid), agent: cpu(agent.pid), gw: cpu(gw.pid!), client: cpu(process.pid) });
const diff = (a: Record<string, number>, b: Record<string, number>) => Object.entries(b).map(([k, v]) => `${k}=${v - a[k]!}`).join(' ');
{
  const a = await connect({ servers: nats.url }); const b = await connect({ servers: nats.url });
  const chunk = randomBytes(960 * 1024); const n = Math.floor((fileMiB * MiB) / chunk.length);
  let got = 0; const done = new Promise<void>((r) => b.subscribe('raw.x', { callback: () => { if (++got === n) r(); } }));
  await b.flush();
  const t = performance.now(); const c0 = pids();
  for (let i = 0; i < n; i++) { a.publish('raw.x', chunk); if (i % 8 === 7) await a.flush(); }
  await done;
  console.log(`raw nats pub/sub ${(fileMiB / ((performance.now() - t) / 1000)).toFixed(0)} MiB/s cpu ms ${diff(c0, pids())}`);
  await a.close(); await b.close();
}
for (let i = 0; i < Number(process.env.PROBE_RUNS ?? 3); i++) {
  let c0 = pids();
  let t = performance.now();
  await upload(src, `${url}?create=true`, fileMiB * MiB);
  const up = fileMiB / ((performance.now() - t) / 1000);
  console.log('upload cpu ms', diff(c0, pids()));
  c0 = pids();
  t = performance.now();
  await download(url, back);
  const down = fileMiB / ((performance.now() - t) / 1000);
  console.log('download cpu ms', diff(c0, pids()));
  console.log(`upload ${up.toFixed(0)} MiB/s download ${down.toFixed(0)} MiB/s sha ${(await sha256Of(back)) === sha}`);
  await rm(back);
}
gw.kill('SIGINT');
await new Promise((r) => gw.once('exit', r));
await agent.stop();
await nats.stop();
await rm(work, { recursive: true, force: true });

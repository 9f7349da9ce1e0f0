// By hand: agent CPU µs per define (process CPU time / defines, /proc/<pid>/stat) and defines/s, 100 sequential defines per
// round; AGENT_BUNDLES=a.mjs,b.mjs alternates built agents round by round (default: dist/virtbus-agent.mjs); PROF=1 adds --cpu-prof.
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { VirtClient } from '@virtbus/client';
import { builtBundle, startNatsServer } from '@virtbus/testing';
import { endBundleRun, spawnBundleAgent } from './bundle-agent.js';
import { median } from './stats.js';
import { processCpuMicros } from './httpload.js';

const root = await mkdtemp('/tmp/dprof-');
const nats = await startNatsServer();
const nc = await connect({ servers: nats.url });
const client = new VirtClient(nc, 120_000);
const bundles = process.env.AGENT_BUNDLES?.split(',') ?? [builtBundle('virtbus-agent')];
const agents = await Promise.all(
  bundles.map(async (bundle, i) => {
    const node = `dp${i}`;
    const nodeArgs = process.env.PROF === '1' ? ['--cpu-prof', '--cpu-prof-interval=100', `--cpu-prof-dir=${root}/prof${i}`] : [];
    const child = await spawnBundleAgent(client, { bundle, node, natsUrl: nats.url, stateDir: join(root, node), nodeArgs });
    return { node, bundle, child, n: 0, ms: [] as number[], cpuUs: [] as number[] };
  }),
);
const perRound = 100;
const rounds = Number(process.env.ROUNDS ?? 5);
for (let r = 0; r <= rounds; r++) {
  // the order alternates round by round: going first or second in a round is not the same on a shared machine
  for (const agent of r % 2 === 0 ? agents : [...agents].reverse()) {
    const t0 = performance.now();
    const c0 = await processCpuMicros(agent.child.pid!);
    for (let i = 0; i < perRound; i++) await client.call(agent.node, 'domain.define', { name: `d${agent.n++}`, driver: 'qemu', vcpus: 1, memory: 64 });
    if (process.env.DP_VERBOSE === '1') console.log(`round ${r} ${agent.bundle}: ${(perRound / ((performance.now() - t0) / 1000)).toFixed(0)} defines/s, ${(((await processCpuMicros(agent.child.pid!)) - c0) / perRound).toFixed(0)} µs CPU/define`);
    // round 0 warms up
    if (r === 0) continue;
    agent.ms.push(performance.now() - t0);
    agent.cpuUs.push(((await processCpuMicros(agent.child.pid!)) - c0) / perRound);
  }
}
for (const agent of agents) console.log(`${agent.bundle}: ${(perRound / (median(agent.ms) / 1000)).toFixed(0)} defines/s (median of ${rounds}), agent CPU ${median(agent.cpuUs).toFixed(0)} µs/define [${agent.cpuUs.map((x) => x.toFixed(0)).join(' ')}]`);
// paired by round (the same minute of a shared machine's load): each agent's rate over the first agent's
for (const agent of agents.slice(1)) console.log(`${agent.bundle} / ${agents[0]!.bundle}: define rate ${median(agent.ms.map((ms, r) => agents[0]!.ms[r]! / ms)).toFixed(2)}×, CPU per define ${median(agent.cpuUs.map((us, r) => us / agents[0]!.cpuUs[r]!)).toFixed(2)}× (medians of per-round ratios)`);
await nc.close();
await endBundleRun(agents.map((agent) => agent.child), nats, root);

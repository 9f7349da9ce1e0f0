// By hand: start and destroy of one diskless TCG domain over NATS on built agents side by side, run by run interleaved with
// the bare QEMU floor (tools/bench/qemu.ts): AGENT_BUNDLES=a.mjs,b.mjs (default: dist/virtbus-agent.mjs), RUNS (15).
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { VirtClient } from '@virtbus/client';
import { builtBundle, killQemusMentioning, requireBinary, startNatsServer } from '@virtbus/testing';
import { spawnBundleAgent } from './bundle-agent.js';
import { bareQemu } from './qemu.js';
import { percentile } from './stats.js';

const root = await mkdtemp('/tmp/lcab-');
const nats = await startNatsServer();
const nc = await connect({ servers: nats.url });
const client = new VirtClient(nc, 60_000);
const binary = requireBinary('qemu-system-x86_64');
const bundles = process.env.AGENT_BUNDLES?.split(',') ?? [builtBundle('virtbus-agent')];
const agents = await Promise.all(
  bundles.map(async (bundle, i) => {
    const node = `lc${i}`;
    const child = await spawnBundleAgent(client, { bundle, node, natsUrl: nats.url, stateDir: join(root, node) });
    await client.call(node, 'domain.define', { name: 'lc', driver: 'qemu', vcpus: 1, memory: 64 });
    return { node, bundle, child, start: [] as number[], destroy: [] as number[] };
  }),
);
const floor = { start: [] as number[], destroy: [] as number[] };
const timed = async (work: () => Promise<unknown>) => {
  const begin = performance.now();
  await work();
  return performance.now() - begin;
};
try {
  const runs = Number(process.env.RUNS ?? 15);
  for (let run = 0; run <= runs; run++) {
    const bare = await bareQemu(binary, 'tcg', root);
    if (run > 0) {
      floor.start.push(bare.spawnToQmpMs);
      floor.destroy.push(bare.quitToExitMs);
    }
    for (const agent of run % 2 === 0 ? agents : [...agents].reverse()) {
      const start = await timed(() => client.call(agent.node, 'domain.state', { id: 'lc', change: { action: 'start' } }));
      const destroy = await timed(() => client.call(agent.node, 'domain.state', { id: 'lc', change: { action: 'destroy' } }));
      // run 0 warms up
      if (run > 0) {
        agent.start.push(start);
        agent.destroy.push(destroy);
      }
    }
  }
} finally {
  await nc.close();
  for (const agent of agents) {
    agent.child.kill('SIGTERM');
    await new Promise((resolve) => agent.child.once('exit', resolve));
  }
  killQemusMentioning(root);
  await nats.stop();
  await rm(root, { recursive: true, force: true });
}
const p50 = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);
console.log(`floor: spawn → QMP ${p50(floor.start).toFixed(1)} ms, quit → reaped ${p50(floor.destroy).toFixed(1)} ms (p50 of ${floor.start.length})`);
for (const agent of agents) {
  console.log(`${agent.bundle}: start ${p50(agent.start).toFixed(1)} ms (${(p50(agent.start) / p50(floor.start)).toFixed(2)}× floor), destroy ${p50(agent.destroy).toFixed(1)} ms (${(p50(agent.destroy) / p50(floor.destroy)).toFixed(2)}× floor)`);
}

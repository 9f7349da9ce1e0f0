// By hand: start and destroy of one diskless TCG domain on built agents side by side, over NATS and through each bundle's
// built gateway (HTTP), with a test-driver domain and a read on both paths to separate QEMU from our own work; run by run
// interleaved with the bare QEMU floor (tools/bench/qemu.ts): AGENT_BUNDLES=a/virtbus-agent.mjs,b/virtbus-agent.mjs (the
// gateway is the virtbus-gateway.mjs beside each; default: dist/), RUNS (15), SETTLE_MS (0). Prints p50s.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent as HttpAgent } from 'node:http';
import { dirname, join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { VirtClient } from '@virtbus/client';
import { builtBundle, freePort, killQemusMentioning, REPO_ROOT, requireBinary, startNatsServer } from '@virtbus/testing';
import { spawnBundleAgent } from './bundle-agent.js';
import { bareQemu, httpSender } from './qemu.js';
import { percentile } from './stats.js';

const root = await mkdtemp('/tmp/lcab-');
const nats = await startNatsServer();
const nc = await connect({ servers: nats.url });
const client = new VirtClient(nc, 60_000);
const binary = requireBinary('qemu-system-x86_64');
const bundles = process.env.AGENT_BUNDLES?.split(',') ?? [builtBundle('virtbus-agent')];
const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 4 });
const gateways: ChildProcess[] = [];
const figureNames = ['nats qemu start', 'nats qemu destroy', 'http qemu start', 'http qemu destroy', 'nats test start', 'nats test destroy', 'http test start', 'http test destroy', 'nats get', 'http get'] as const;
type Figures = Record<(typeof figureNames)[number], number[]>;
const agents = await Promise.all(
  bundles.map(async (bundle, i) => {
    const node = `lc${i}`;
    const child = await spawnBundleAgent(client, { bundle, node, natsUrl: nats.url, stateDir: join(root, node), drivers: 'qemu,test' });
    for (const [name, driver] of [['lc', 'qemu'], ['lh', 'qemu'], ['tc', 'test'], ['th', 'test']] as const) await client.call(node, 'domain.define', { name, driver, vcpus: 1, memory: 64 });
    const port = await freePort();
    const gateway = spawn(process.execPath, [join(dirname(bundle), 'virtbus-gateway.mjs'), '--config', 'none', '--nats', nats.url, '--port', String(port), '--rate-limit', '0'], {
      cwd: REPO_ROOT,
      env: { ...process.env, LOG_LEVEL: 'warn', NODE_ENV: 'production' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    gateways.push(gateway);
    const send = httpSender(`http://127.0.0.1:${port}`, httpAgent);
    for (let attempt = 0; (await send('GET', `/v1/nodes/${node}`).catch(() => undefined))?.status !== 200; attempt++) {
      if (attempt > 300) throw new Error(`gateway of ${bundle} did not come up`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return { node, bundle, child, send, figures: Object.fromEntries(figureNames.map((name) => [name, [] as number[]])) as Figures };
  }),
);
const floor = { start: [] as number[], destroy: [] as number[] };
// SETTLE_MS: a pause before each call, so a destroy does not meet the guest's firmware still running (TCG burns a core)
const settleMs = Number(process.env.SETTLE_MS ?? 0);
const timed = async (work: () => Promise<unknown>) => {
  if (settleMs > 0) await new Promise((resolve) => setTimeout(resolve, settleMs));
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
      const viaNats = (id: string, action: 'start' | 'destroy') => () => client.call(agent.node, 'domain.state', { id, change: { action } });
      const viaHttp = (id: string, action: 'start' | 'destroy') => async () => {
        const reply = await agent.send('PUT', `/v1/nodes/${agent.node}/domains/${id}/state`, { action });
        if (reply.status !== 200) throw new Error(`${action} ${id}: HTTP ${reply.status} ${JSON.stringify(reply.body)}`);
      };
      const measured: Partial<Record<keyof Figures, number>> = {
        'nats qemu start': await timed(viaNats('lc', 'start')),
        'nats qemu destroy': await timed(viaNats('lc', 'destroy')),
        'http qemu start': await timed(viaHttp('lh', 'start')),
        'http qemu destroy': await timed(viaHttp('lh', 'destroy')),
        'nats test start': await timed(viaNats('tc', 'start')),
        'nats test destroy': await timed(viaNats('tc', 'destroy')),
        'http test start': await timed(viaHttp('th', 'start')),
        'http test destroy': await timed(viaHttp('th', 'destroy')),
        'nats get': await timed(() => client.call(agent.node, 'domain.get', { id: 'lc' })),
        'http get': await timed(() => agent.send('GET', `/v1/nodes/${agent.node}/domains/lc`)),
      };
      // run 0 warms up
      if (run > 0) for (const [name, ms] of Object.entries(measured)) agent.figures[name as keyof Figures].push(ms);
    }
  }
} finally {
  await nc.close();
  for (const child of [...gateways, ...agents.map((agent) => agent.child)]) {
    child.kill('SIGTERM');
    if (child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once('exit', resolve));
  }
  httpAgent.destroy();
  killQemusMentioning(root);
  await nats.stop();
  await rm(root, { recursive: true, force: true });
}
const p50 = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);
// two bundles: the median of the run-by-run differences (B − A) is steadier than the difference of medians on a busy host
const [first, second] = agents;
if (first && second && agents.length === 2) {
  console.log(`paired median B − A (ms): ${figureNames.map((name) => `${name} ${p50(second.figures[name].map((ms, run) => ms - first.figures[name][run]!)).toFixed(2)}`).join(', ')}`);
}
console.log(`floor: spawn → QMP ${p50(floor.start).toFixed(1)} ms, quit → reaped ${p50(floor.destroy).toFixed(1)} ms (p50 of ${floor.start.length})`);
for (const agent of agents) {
  const f = agent.figures;
  console.log(`${agent.bundle}: ${figureNames.map((name) => `${name} ${p50(f[name]).toFixed(2)}`).join(', ')} ms`);
  console.log(`  qemu ratios to floor: nats start ${(p50(f['nats qemu start']) / p50(floor.start)).toFixed(2)}×, http start ${(p50(f['http qemu start']) / p50(floor.start)).toFixed(2)}×, nats destroy ${(p50(f['nats qemu destroy']) / p50(floor.destroy)).toFixed(2)}×, http destroy ${(p50(f['http qemu destroy']) / p50(floor.destroy)).toFixed(2)}×`);
}

// By-hand A/B of the built agent's idle RSS, as `npm run bench` (libvirt section) measures it: qemu driver, no /metrics,
// ready, one list, one define + undefine, then 1 s of rest. AGENT_BUNDLES=a.mjs,b.mjs (default: dist/virtbus-agent.mjs)
// alternate round by round (ROUNDS, default 5); a variant may add node flags after `::` (a.mjs::--max-semi-space-size=1).
// Prints each bundle's median RSS and first-call latencies, with libvirtd's and a bare node's RSS read in the same rounds
// and the last round's RSS by mapping (rssByMappingKiB). Run: npx tsx tools/bench/idle-rss-ab.ts
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from '@nats-io/transport-node';
import { VirtClient } from '@virtbus/client';
import { builtBundle, startLibvirt, startNatsServer, type Libvirt } from '@virtbus/testing';
import { rssKiB } from './httpload.js';
import { rssByMappingKiB, type RssByMapping } from './libvirt.js';
import { percentile, round } from './stats.js';

const variants = process.env.AGENT_BUNDLES?.split(',') ?? [builtBundle('virtbus-agent')];
const rounds = Number(process.env.ROUNDS ?? 5);
const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 50);
const timed = async (call: () => Promise<unknown>) => {
  const started = performance.now();
  await call();
  return performance.now() - started;
};

const root = await mkdtemp('/tmp/vbrss-');
const nats = await startNatsServer();
const nc = await connect({ servers: nats.url });
const client = new VirtClient(nc, 60_000);
let libvirt: Libvirt | undefined;
const figures = variants.map(() => ({ rss: [] as number[], readyMs: [] as number[], listMs: [] as number[], defineMs: [] as number[], byMapping: undefined as RssByMapping | undefined }));
const reference = { libvirtd: [] as number[], bareNode: [] as number[], libvirtdByMapping: undefined as RssByMapping | undefined, bareNodeByMapping: undefined as RssByMapping | undefined };
try {
  libvirt = await startLibvirt(join(root, 'lv')).catch((error: unknown) => {
    console.log(`no libvirtd reference: ${(error as Error).message}`);
    return undefined;
  });
  for (let r = 0; r < rounds; r++) {
    for (const [i, variant] of variants.entries()) {
      const [bundle, flags = ''] = variant.split('::') as [string, string?];
      const node = `rss${r}x${i}`;
      const stateDir = join(root, node);
      const started = performance.now();
      const child = spawn(process.execPath, [...flags.split(' ').filter(Boolean), bundle, '--config', 'none', '--node', node, '--nats', nats.url, '--state-dir', stateDir, '--drivers', 'qemu', '--log-level', 'warn'], {
        env: { ...process.env, VIRTBUS_METRICS_ADDRESS: 'off' },
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      const exited = new Promise((resolve) => child.once('exit', resolve));
      try {
        for (let attempt = 0; ; attempt++) {
          if (child.exitCode !== null) throw new Error(`${bundle} exited (${child.exitCode})`);
          if (await client.call(node, 'node.info', {}, { timeoutMs: 500 }).then(() => true, () => false)) break;
          if (attempt > 600) throw new Error(`${bundle} was not ready`);
          await sleep(20);
        }
        const figure = figures[i]!;
        figure.readyMs.push(performance.now() - started);
        figure.listMs.push(await timed(() => client.call(node, 'domain.list', {})));
        figure.defineMs.push(await timed(() => client.call(node, 'domain.define', { name: 'idle', driver: 'qemu', vcpus: 1, memory: 64 })));
        await client.call(node, 'domain.undefine', { id: 'idle' });
        const bareNode = spawn(process.execPath, ['-e', 'setInterval(() => undefined, 1e9)'], { stdio: 'ignore' });
        await sleep(1000);
        figure.rss.push(await rssKiB(child.pid!));
        figure.byMapping = await rssByMappingKiB(child.pid!);
        reference.bareNode.push(await rssKiB(bareNode.pid!));
        reference.bareNodeByMapping = await rssByMappingKiB(bareNode.pid!);
        bareNode.kill('SIGTERM');
        if (libvirt) {
          reference.libvirtd.push(await rssKiB(libvirt.libvirtdPid()));
          reference.libvirtdByMapping = await rssByMappingKiB(libvirt.libvirtdPid());
        }
      } finally {
        child.kill('SIGTERM');
        await exited;
        await rm(stateDir, { recursive: true, force: true });
      }
    }
  }
  const libvirtd = reference.libvirtd.length ? median(reference.libvirtd) : undefined;
  const bareNode = median(reference.bareNode);
  console.log(`rounds ${rounds}; libvirtd ${libvirtd ?? '-'} KiB, bare node ${bareNode} KiB (medians)`);
  for (const [i, variant] of variants.entries()) {
    const f = figures[i]!;
    const rss = median(f.rss);
    console.log(
      `${variant}: idle RSS ${rss} KiB (${f.rss.join(', ')})${libvirtd ? `, ${round(rss / libvirtd, 2)}x libvirtd` : ''}, ${round(rss / bareNode, 2)}x bare node; ` +
        `ready ${round(median(f.readyMs), 0)} ms, first domain.list ${round(median(f.listMs), 2)} ms, first domain.define ${round(median(f.defineMs), 2)} ms (medians)`,
    );
    console.log(`  by mapping (last round, KiB): ${JSON.stringify(f.byMapping)}`);
  }
  console.log(`  bare node by mapping: ${JSON.stringify(reference.bareNodeByMapping)}`);
  if (reference.libvirtdByMapping) console.log(`  libvirtd by mapping: ${JSON.stringify(reference.libvirtdByMapping)}`);
} finally {
  await libvirt?.stop();
  await nc.close();
  await nats.stop();
  await rm(root, { recursive: true, force: true });
}

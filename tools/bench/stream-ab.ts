// Volume stream A/B: AGENT_BUNDLES / GW_BUNDLES (comma lists, same length; default the built ones) as stacks on one nats-server,
// AB_MIB (256) MiB up and down through each in turn for AB_RUNS (3) rounds, with virsh vol-upload/-download of the same file
// interleaved (AB_VIRSH=0 skips it): MiB/s, CPU s per GiB per process and peak RSS growth (MiB) per transfer, medians.
// AB_NATS_CONFIGS (`|`-separated, one per stack): each stack gets its own nats-server with these config lines (e.g. `max_payload: 8MB`).
// AB_PERF=<dir> records `perf record -g` of the measured processes per transfer there (add --perf-basic-prof to the node args for JS names).
// AB_THREADS=1 splits the agent's and gateway's CPU s/GiB into main (the JS thread) and off (libuv's file I/O pool, V8's GC helpers).
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentArgs, builtBundle, QUIET_AGENT_ARGS, startLibvirt, startNatsServer, type Libvirt } from '@virtbus/testing';
import { VirtClient } from '@virtbus/client';
import { connect } from '@nats-io/transport-node';
import { processCpuMicros } from './httpload.js';
import { median } from './stats.js';
import { download, rssBytes, sha256Of, spawnGatewayProcess, upload, writeRandomFile } from './storage.js';

const MiB = 1024 * 1024;
const fileMiB = Number(process.env.AB_MIB ?? 256);
const runs = Number(process.env.AB_RUNS ?? 3);
const agentBundles = process.env.AGENT_BUNDLES?.split(',') ?? [builtBundle('virtbus-agent')];
const gatewayBundles = process.env.GW_BUNDLES?.split(',') ?? agentBundles.map(() => builtBundle('virtbus-gateway'));
const root = await mkdtemp(join(tmpdir(), 'stream-ab-'));
const natsConfigs = process.env.AB_NATS_CONFIGS?.split('|');
const nats = await startNatsServer();
const servers = natsConfigs ? await Promise.all(natsConfigs.map((config) => startNatsServer({ config }))) : [];
const connections = await Promise.all([nats, ...servers].map((server) => connect({ servers: server.url })));
const clients = connections.map((nc) => new VirtClient(nc, 60_000));
/** Stops of the agents and gateways started, each resolving once its process has exited (so their state dirs can go). */
const stops: (() => Promise<unknown>)[] = [];
let libvirt: Libvirt | undefined;

/** The node processes whose CPU AB_THREADS=1 splits by thread. */
const splitThreads = process.env.AB_THREADS === '1' ? ['gateway', 'agent'] : [];

/** CPU µs of a process's main thread and of its other threads (Node 20 leaves them all named "node") from /proc/<pid>/task. */
async function threadCpuMicros(pid: number): Promise<Record<string, number>> {
  const byClass: Record<string, number> = { main: 0, off: 0 };
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [])) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const micros = ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100 || 0;
    byClass[Number(tid) === pid ? 'main' : 'off']! += micros;
  }
  return byClass;
}


/** MiB/s, CPU s/GiB and peak RSS growth (MiB) of each named pid during `work`. */
async function measure(pids: Record<string, number>, work: () => Promise<unknown>, perfName?: string) {
  const names = Object.keys(pids);
  const perf = process.env.AB_PERF && perfName ? spawn('perf', ['record', '-q', '-g', '-p', Object.values(pids).join(','), '-o', join(process.env.AB_PERF, `${perfName}.data`)], { stdio: 'ignore' }) : undefined;
  const perfDone = perf && new Promise((resolve) => perf.once('exit', resolve));
  if (perf) await new Promise((r) => setTimeout(r, 500));
  const cpu0 = await Promise.all(names.map((n) => processCpuMicros(pids[n]!)));
  const split = names.filter((n) => splitThreads.includes(n));
  const threads0 = await Promise.all(split.map((n) => threadCpuMicros(pids[n]!)));
  const rss0 = await Promise.all(names.map((n) => rssBytes(pids[n]!)));
  const peak = [...rss0];
  let running = true;
  const sampler = (async () => {
    while (running) {
      (await Promise.all(names.map((n) => rssBytes(pids[n]!)))).forEach((v, i) => (peak[i] = Math.max(peak[i]!, v)));
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const t0 = performance.now();
  await work();
  const seconds = (performance.now() - t0) / 1000;
  running = false;
  await sampler;
  perf?.kill('SIGINT');
  await perfDone;
  const cpu1 = await Promise.all(names.map((n) => processCpuMicros(pids[n]!)));
  const threads1 = await Promise.all(split.map((n) => threadCpuMicros(pids[n]!)));
  const gib = fileMiB / 1024;
  const byThread = threads1.flatMap((after, i) => Object.keys(after).map((kind) => [`${split[i]}.${kind}`, (after[kind]! - threads0[i]![kind]!) / 1e6 / gib] as const));
  return {
    mibs: fileMiB / seconds,
    cpu: Object.fromEntries([...names.map((n, i) => [n, (cpu1[i]! - cpu0[i]!) / 1e6 / gib] as const), ...byThread]),
    rss: Object.fromEntries(names.map((n, i) => [n, (peak[i]! - rss0[i]!) / MiB])),
  };
}

try {
  const stacks = [];
  for (const [i, bundle] of agentBundles.entries()) {
    const node = `ab${i}`;
    const server = servers[i] ?? nats;
    const client = clients[servers[i] ? i + 1 : 0]!;
    const args = agentArgs({ node, natsUrl: server.url, stateDir: join(root, node), extraArgs: QUIET_AGENT_ARGS }).map((a) => (a === builtBundle('virtbus-agent') ? bundle : a));
    const child = spawn(process.execPath, [...(process.env.AB_NODE_ARGS?.split(' ').filter(Boolean) ?? []), ...(process.env.AB_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.AB_PROF}/agent${i}`] : []), ...args], { stdio: ['ignore', process.env.AB_VERBOSE ? 'inherit' : 'ignore', 'inherit'] });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    stops.push(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill();
      return exited;
    });
    for (let attempt = 0; ; attempt++) {
      if (await client.call(node, 'node.info', {}, { timeoutMs: 1000 }).then(() => true, () => false)) break;
      if (attempt > 300 || child.exitCode !== null) throw new Error(`agent ${bundle} did not come up`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const gateway = await spawnGatewayProcess(server.url, node, gatewayBundles[i]);
    stops.push(gateway.stop);
    stacks.push({ label: `${i}: ${bundle.split('/').slice(-3).join('/')} + ${gatewayBundles[i]!.split('/').slice(-3).join('/')}${natsConfigs ? ` (${natsConfigs[i] || 'default server'})` : ''}`, node, agent: child.pid!, gateway, nats: server.pid });
  }
  const source = join(root, 'source.img');
  const sha = await writeRandomFile(source, fileMiB);
  const back = join(root, 'back.img');
  if (process.env.AB_VIRSH !== '0') {
    libvirt = await startLibvirt(join(root, 'lv'));
    await mkdir(join(root, 'lvpool'));
    await libvirt.batch([`pool-create-as abpool dir --target ${join(root, 'lvpool')}`]);
  }
  const results = new Map<string, { up: Awaited<ReturnType<typeof measure>>[]; down: Awaited<ReturnType<typeof measure>>[] }>();
  const add = (label: string, dir: 'up' | 'down', m: Awaited<ReturnType<typeof measure>>) => {
    const entry = results.get(label) ?? { up: [], down: [] };
    entry[dir].push(m);
    results.set(label, entry);
  };
  let checksumsEqual = true;
  for (let r = 0; r < runs; r++) {
    for (const stack of stacks) {
      const url = `${stack.gateway.url}/v1/nodes/${stack.node}/storage-pools/default/volumes/ab.raw/content`;
      const pids = { gateway: stack.gateway.pid, agent: stack.agent, 'nats-server': stack.nats };
      add(stack.label, 'up', await measure(pids, () => upload(source, `${url}?create=true`, fileMiB * MiB), `s${stacks.indexOf(stack)}-up-${r}`));
      add(stack.label, 'down', await measure(pids, () => download(url, back), `s${stacks.indexOf(stack)}-down-${r}`));
      checksumsEqual &&= (await sha256Of(back)) === sha;
      await rm(back);
    }
    if (libvirt) {
      const lv = libvirt;
      await lv.batch([`vol-create-as abpool ab.raw ${fileMiB}M --format raw`]);
      add('virsh', 'up', await measure({ libvirtd: lv.libvirtdPid() }, () => lv.batch([`vol-upload --pool abpool ab.raw ${source}`])));
      add('virsh', 'down', await measure({ libvirtd: lv.libvirtdPid() }, () => lv.batch([`vol-download --pool abpool ab.raw ${back}`])));
      checksumsEqual &&= (await sha256Of(back)) === sha;
      await rm(back);
      await lv.batch(['vol-delete --pool abpool ab.raw']);
    }
  }
  console.log(`\n${fileMiB} MiB, ${runs} rounds interleaved, medians; sha256 equal: ${checksumsEqual}`);
  console.log('| stack | dir | MiB/s | CPU s/GiB by process | peak RSS growth MiB |\n|---|---|---|---|---|');
  for (const [label, entry] of results) {
    for (const dir of ['up', 'down'] as const) {
      const list = entry[dir];
      const names = Object.keys(list[0]!.cpu);
      const cpu = names.map((n) => `${n} ${median(list.map((m) => m.cpu[n]!)).toFixed(2)}`).join(', ');
      const rss = Object.keys(list[0]!.rss).map((n) => `${n} ${Math.max(...list.map((m) => m.rss[n]!)).toFixed(0)}`).join(', ');
      console.log(`| ${label} | ${dir} | ${median(list.map((m) => m.mibs)).toFixed(1)} | ${cpu} | ${rss} |`);
    }
  }
} finally {
  await Promise.all(stops.map((stop) => stop()));
  await libvirt?.stop();
  await Promise.all(connections.map((nc) => nc.close()));
  await Promise.all([nats, ...servers].map((server) => server.stop()));
  await rm(root, { recursive: true, force: true });
}

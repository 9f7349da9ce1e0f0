import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { VirtClient } from '@virtbus/client';
import { renderDomainXml } from '@virtbus/drivers';
import { ensureLibvirt, killQemusMentioning, requireBinary, spawnAgent, startLibvirt, startNatsServer, testDomainConfig, VIRSH, type Libvirt } from '@virtbus/testing';
import { processCpuMicros, rssKiB } from './httpload.js';
import { memoryProbes, PROFILE_ROWS, repeatFor, type BenchProfiler } from './profile.js';
import { percentile, round } from './stats.js';
import { download, rawNatsBulkMiBs, sha256Of, spawnGatewayProcess, upload, writeRandomFile } from './storage.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const NODE = 'benchlv';

export interface LibvirtBenchOptions {
  quick: boolean;
  /** Domains defined on each side for the define-rate probe at scale (10,000; quick 2,000). */
  scaleDomains?: number;
  /** Profiles define, upload and download (agent, gateway) and splits the agent's idle RSS, each after its measured phase. */
  profiler?: BenchProfiler;
}

/** One compared figure: virtbus, libvirt, and virtbus / libvirt (time: < 1 is faster; rate: > 1 is faster). */
export interface Compared {
  virtbus: number;
  libvirt: number;
  ratio: number;
}

export interface LibvirtBenchResult {
  libvirtVersion: string;
  runs: number;
  /** ms p50: start of a defined diskless TCG domain → running (virsh start / domain.state start over NATS). */
  startMs: Compared;
  /** ms p50: destroy → shut off, process reaped. */
  destroyMs: Compared;
  /** Defines per second, 1,000 sequential defines from one client connection. */
  definesPerSec: Compared;
  /** Defines per second of 100 sequential defines while 100 domains exist, and while `scaleDomains` exist. */
  scaleDomains: number;
  /** Scratch domains defined and undefined on each side before any timed define (the same warm-up for both daemons). */
  defineWarmup: number;
  definesPerSecAt100: Compared;
  definesPerSecAtScale: Compared;
  /** ms p50: list all of 1,000+ domains with their states (virsh list --all / domain.list). */
  listMs: Compared;
  /** One page of 1,000 (limit=1000) through the gateway process over HTTP vs virsh list --all. */
  gatewayListMs: Compared;
  /** ms p50: one domain by name with its info (virsh dominfo / domain.get). */
  lookupInfoMs: Compared;
  fileMiB: number;
  /** MiB/s median: a file into a dir pool (virsh vol-upload / HTTP PUT through the gateway), and back. */
  uploadMiBs: Compared;
  downloadMiBs: Compared;
  /** MiB/s median: the raw NATS floor in the same run, the same file's bytes in ~1 MiB requests from one connection to a hashing responder on another, 8 in flight. */
  natsBulkMiBs: number;
  /** Every downloaded file, both sides, has the source's sha256. */
  checksumsEqual: boolean;
  /**
   * CPU seconds per GiB moved (user + system from /proc/<pid>/stat, summed over the runs) by process: upload and download
   * through the gateway, virsh's (libvirtd; virsh itself not counted), and the raw NATS floor (both clients are this process).
   */
  volumeCpuSecPerGiB: Record<'upload' | 'download' | 'virshUpload' | 'virshDownload' | 'natsFloor', Record<string, number>>;
  /** CPUs of the host the transfers shared (os.availableParallelism). */
  cores?: number;
  /** KiB: idle RSS of the agent (built code, qemu driver, no domain) vs libvirtd (no domain), both ready and settled, same moment. */
  idleRssKiB: Compared;
  /** KiB: a bare `node -e` process kept alive by a timer, read at the same moment: the share of the agent's RSS no agent code makes. */
  bareNodeRssKiB?: number;
  /** virtbus through its libvirt driver on the same libvirtd, next to virsh. */
  viaLibvirtDriver: LibvirtDriverBenchResult;
}

const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 50);
const compare = (virtbus: number, libvirt: number): Compared => ({ virtbus: round(virtbus, 2), libvirt: round(libvirt, 2), ratio: round(virtbus / libvirt, 3) });

/** CPU time of named processes while a piece of work runs, summed per label. */
class ProcessCpu {
  private readonly totals = new Map<string, Record<string, number>>();
  constructor(private readonly pids: Record<string, number>) {}

  async during<T>(label: string, names: string[], work: () => Promise<T>): Promise<T> {
    const before = await Promise.all(names.map((name) => processCpuMicros(this.pids[name]!)));
    const result = await work();
    const after = await Promise.all(names.map((name) => processCpuMicros(this.pids[name]!)));
    const total = this.totals.get(label) ?? {};
    names.forEach((name, i) => (total[name] = (total[name] ?? 0) + after[i]! - before[i]!));
    this.totals.set(label, total);
    return result;
  }

  perGiB(gib: number): Record<string, Record<string, number>> {
    return Object.fromEntries([...this.totals].map(([label, total]) => [label, Object.fromEntries(Object.entries(total).map(([name, micros]) => [name, round(micros / 1e6 / gib, 2)]))]));
  }
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const begin = performance.now();
  await work();
  return performance.now() - begin;
}

/** Start / destroy: one warm-up cycle, then `runs` cycles, virtbus (over NATS) and virsh interleaved cycle by cycle; ms of each. */
async function startDestroyCycles(runs: number, client: VirtClient, node: string, libvirt: Libvirt, names: { vb: string; lv: string }) {
  const figures = { vbStart: [] as number[], vbDestroy: [] as number[], lvStart: [] as number[], lvDestroy: [] as number[] };
  for (let i = 0; i <= runs; i++) {
    const start = await timed(() => client.call(node, 'domain.state', { id: names.vb, change: { action: 'start' } }));
    const destroy = await timed(() => client.call(node, 'domain.state', { id: names.vb, change: { action: 'destroy' } }));
    const [lvStart, lvDestroy] = await libvirt.batch([`start ${names.lv}`, `destroy ${names.lv}`]);
    if (i === 0) continue;
    figures.vbStart.push(start);
    figures.vbDestroy.push(destroy);
    figures.lvStart.push(lvStart!);
    figures.lvDestroy.push(lvDestroy!);
  }
  return figures;
}

/** The diskless 64 MiB TCG domain both sides run (libvirt type qemu = `-accel tcg`). */
export const domainXml = (name: string) =>
  `<domain type='qemu'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>` +
  `<os><type arch='x86_64' machine='pc'>hvm</type></os><devices><emulator>${requireBinary('qemu-system-x86_64')}</emulator>` +
  `<controller type='usb' model='none'/><memballoon model='none'/></devices></domain>`;


/**
 * virtbus and libvirt side by side in one run, on the same host, the same diskless TCG domain and the same file.
 * libvirt: Debian's libvirtd + virtlogd in a private mount and network namespace with the bench's own config, state and
 * runtime directories, QEMU as root, under a subreaper; measured with one `virsh -t` process per batch (its per-command
 * times, one connection). virtbus: one agent (qemu driver) over NATS with VirtClient; volumes through the gateway HTTP.
 */
export async function benchLibvirt(options: LibvirtBenchOptions): Promise<LibvirtBenchResult> {
  await ensureLibvirt();
  const runs = options.quick ? 5 : 10;
  const defines = 1000;
  const scale = options.scaleDomains ?? (options.quick ? 2000 : 10_000);
  const probeSize = 100;
  const defineWarmup = options.quick ? 200 : 1000;
  const fileMiB = 256;
  const volumeRuns = options.quick ? 2 : 3;
  const tag = `vbl${randomBytes(3).toString('hex')}`;
  // Short path: unix socket paths are limited to 107 bytes.
  const root = await mkdtemp(join('/tmp', `${tag}-`));
  const nats = await startNatsServer();
  const nc = await connect({ servers: nats.url });
  const client = new VirtClient(nc, 120_000);
  let libvirt: Libvirt | undefined;
  let agent: Awaited<ReturnType<typeof spawnAgent>> | undefined;
  let gateway: Awaited<ReturnType<typeof spawnGatewayProcess>> | undefined;
  try {
    libvirt = await startLibvirt(join(root, 'lv'));
    const { stdout: version } = await run(VIRSH, ['-q', '-c', libvirt.uri, 'version', '--daemon']);
    const profiler = options.profiler;
    agent = await spawnAgent({ node: NODE, natsUrl: nats.url, stateDir: join(root, 'agent'), drivers: 'qemu', env: { VIRTBUS_METRICS_ADDRESS: 'off' }, nodeArgs: [...(profiler?.nodeArgs ?? [])] });
    // The gateway in its own process, as deployed (the HTTP client is this process, as virsh is its own).
    gateway = await spawnGatewayProcess(nats.url, NODE, undefined, profiler?.nodeArgs);
    // Idle memory before any work: both daemons answered their first call, then a second to settle.
    await client.call(NODE, 'node.info', {});
    const bareNode = spawn(process.execPath, ['-e', 'setInterval(() => undefined, 1e9)'], { stdio: 'ignore' });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const idleRssKiB = compare(await rssKiB(agent.pid), await rssKiB(libvirt.libvirtdPid()));
    const bareNodeRssKiB = await rssKiB(bareNode.pid!);
    await profiler?.memory(PROFILE_ROWS.idleRss, [{ name: 'agent', pid: agent.pid, output: agent.output }, { name: 'libvirtd', pid: libvirt.libvirtdPid() }, { name: 'bare node', pid: bareNode.pid! }]);
    bareNode.kill('SIGTERM');

    // Volumes first, before 2,000 define/undefine events keep the agent's outbox busy: the same file into a dir pool, and back.
    const source = join(root, 'source.img');
    const sourceSha = await writeRandomFile(source, fileMiB);
    const poolDir = join(root, 'lvpool');
    await mkdir(poolDir);
    const pool = `${tag}-pool`;
    await libvirt.batch([`pool-create-as ${pool} dir --target ${poolDir}`]);
    const back = join(root, 'back.img');
    const url = `${gateway.url}/v1/nodes/${NODE}/storage-pools/default/volumes/bench.raw/content`;
    const up = { vb: [] as number[], lv: [] as number[] };
    const down = { vb: [] as number[], lv: [] as number[] };
    const natsBulk: number[] = [];
    let checksumsEqual = true;
    const lvd = libvirt;
    const cpu = new ProcessCpu({ gateway: gateway.pid, agent: agent.pid, 'nats-server': nats.pid, libvirtd: lvd.libvirtdPid(), bench: process.pid });
    const onBus = ['gateway', 'agent', 'nats-server'];
    for (let i = 0; i < volumeRuns; i++) {
      natsBulk.push(await cpu.during('natsFloor', ['nats-server', 'bench'], () => rawNatsBulkMiBs(nats.url, fileMiB)));
      up.vb.push(fileMiB / ((await cpu.during('upload', onBus, () => timed(() => upload(source, `${url}?create=true`, fileMiB * MiB)))) / 1000));
      down.vb.push(fileMiB / ((await cpu.during('download', onBus, () => timed(() => download(url, back)))) / 1000));
      checksumsEqual &&= (await sha256Of(back)) === sourceSha;
      await rm(back);
      await lvd.batch([`vol-create-as ${pool} bench.raw ${fileMiB}M --format raw`]);
      const [lvUp] = await cpu.during('virshUpload', ['libvirtd'], () => lvd.batch([`vol-upload --pool ${pool} bench.raw ${source}`]));
      const [lvDown] = await cpu.during('virshDownload', ['libvirtd'], () => lvd.batch([`vol-download --pool ${pool} bench.raw ${back}`]));
      up.lv.push(fileMiB / (lvUp! / 1000));
      down.lv.push(fileMiB / (lvDown! / 1000));
      checksumsEqual &&= (await sha256Of(back)) === sourceSha;
      await rm(back);
      await libvirt.batch([`vol-delete --pool ${pool} bench.raw`]);
    }
    await libvirt.batch([`pool-destroy ${pool}`]);
    const [profiledAgent, profiledGateway] = [{ name: 'agent', pid: agent.pid, output: agent.output }, { name: 'gateway', pid: gateway.pid, output: gateway.output }];
    if (profiler) {
      const moved = fileMiB / 1024;
      const bus = [profiledGateway, profiledAgent, { name: 'nats-server', pid: nats.pid }];
      await profiler.cpu([PROFILE_ROWS.upload], bus, async () => {
        await upload(source, `${url}?create=true`, fileMiB * MiB);
        return [{ row: PROFILE_ROWS.upload, per: 'GiB', unit: 'GiB', units: moved }];
      });
      await profiler.cpu([PROFILE_ROWS.download], bus, async () => {
        await download(url, back);
        await rm(back);
        return [{ row: PROFILE_ROWS.download, per: 'GiB', unit: 'GiB', units: moved }];
      });
    }

    const xmlDir = join(root, 'xml');
    await mkdir(xmlDir);
    const life = `${tag}-life`;
    await writeFile(join(xmlDir, 'life.xml'), domainXml(life));
    await libvirt.batch([`define ${join(xmlDir, 'life.xml')}`]);
    await client.call(NODE, 'domain.define', { name: life, driver: 'qemu', vcpus: 1, memory: 64 });
    const figures = await startDestroyCycles(runs, client, NODE, libvirt, { vb: life, lv: life });

    // virtbus through its libvirt driver, on the same daemon before it holds thousands of domains
    const viaLibvirtDriver = await benchLibvirtDriver({ libvirt, natsUrl: nats.url, client, root, tag, runs, domains: probeSize });

    // Defines, sequential from one connection each: the first 1,000 timed in all, and probes of 100 while 100 and while
    // `scale` domains exist (the rest filled untimed, virtbus 16 in parallel, libvirt in batches of 1,000 commands).
    const names = Array.from({ length: scale + probeSize }, (_, i) => `${tag}-d${i}`);
    await Promise.all(names.map((name, i) => writeFile(join(xmlDir, `d${i}.xml`), domainXml(name))));
    const lvDefine = async (from: number, to: number) => {
      let ms = 0;
      for (let i = from; i < to; i += 1000) ms += (await libvirt!.batch(names.slice(i, Math.min(to, i + 1000)).map((_, j) => `define ${join(xmlDir, `d${i + j}.xml`)}`))).reduce((a, b) => a + b, 0);
      return ms;
    };
    const vbDefine = (from: number, to: number) =>
      timed(async () => {
        for (const name of names.slice(from, to)) await client.call(NODE, 'domain.define', { name, driver: 'qemu', vcpus: 1, memory: 64 });
      });
    // Both daemons warmed alike before any timed define: `defineWarmup` scratch domains defined and undefined on each side
    // (the agent's JIT and first files in its fresh directories; libvirtd's caches), so no rate is a cold agent's.
    const scratch = Array.from({ length: defineWarmup }, (_, i) => `${tag}-w${i}`);
    await Promise.all(scratch.map((name, i) => writeFile(join(xmlDir, `w${i}.xml`), domainXml(name))));
    await libvirt.batch(scratch.map((_, i) => `define ${join(xmlDir, `w${i}.xml`)}`));
    await libvirt.batch(scratch.map((name) => `undefine ${name}`));
    for (const name of scratch) await client.call(NODE, 'domain.define', { name, driver: 'qemu', vcpus: 1, memory: 64 });
    for (const name of scratch) await client.call(NODE, 'domain.undefine', { id: name });
    const first = { lv: [await lvDefine(0, 100), await lvDefine(100, 200), await lvDefine(200, defines)], vb: [await vbDefine(0, 100), await vbDefine(100, 200), await vbDefine(200, defines)] };
    const lvDefineMs = first.lv.reduce((a, b) => a + b, 0);
    const vbDefineMs = first.vb.reduce((a, b) => a + b, 0);

    // List of all domains (1,001) and one lookup with its info.
    const lvList = await libvirt.batch(Array.from({ length: runs }, () => 'list --all'));
    const vbList: number[] = [];
    for (let i = 0; i < runs; i++) vbList.push(await timed(() => client.call(NODE, 'domain.list', {})));
    // the same list as one HTTP page of 1,000 through the gateway process, body read
    const gwList: number[] = [];
    const listPage = `${gateway.url}/v1/nodes/${NODE}/domains?limit=1000`;
    for (let i = 0; i < runs; i++) {
      gwList.push(
        await timed(async () => {
          const response = await fetch(listPage);
          const page = (await response.json()) as { domains?: unknown[] };
          if (!response.ok || page.domains?.length !== 1000) throw new Error(`GET ${listPage}: ${response.status}, ${page.domains?.length} domains`);
        }),
      );
    }
    const lookups = runs * 5;
    const probe = names[defines / 2]!;
    const lvLookup = await libvirt.batch(Array.from({ length: lookups }, () => `dominfo ${probe}`));
    const vbLookup: number[] = [];
    for (let i = 0; i < lookups; i++) vbLookup.push(await timed(() => client.call(NODE, 'domain.get', { id: probe })));

    await lvDefine(defines, scale);
    const fill = names.slice(defines, scale);
    await Promise.all(Array.from({ length: 16 }, async () => {
      for (let name = fill.shift(); name !== undefined; name = fill.shift()) await client.call(NODE, 'domain.define', { name, driver: 'qemu', vcpus: 1, memory: 64 });
    }));
    const atScale = { lv: await lvDefine(scale, scale + probeSize), vb: await vbDefine(scale, scale + probeSize) };
    // after the measured defines: more of them, profiled, at scale; they go with the rest below
    const profiledNames: string[] = [];
    await profiler?.cpu([PROFILE_ROWS.define], [profiledAgent, { name: 'nats-server', pid: nats.pid }], async () => {
      const from = names.length;
      const units = await repeatFor(profiler.seconds, () => {
        const name = `${tag}-p${profiledNames.length}`;
        profiledNames.push(name);
        return client.call(NODE, 'domain.define', { name, driver: 'qemu', vcpus: 1, memory: 64 });
      });
      return [{ row: PROFILE_ROWS.define, per: `define (${from} defined)`, unit: 'request', units }];
    });

    for (let i = 0; i < names.length; i += 1000) await libvirt.batch(names.slice(i, i + 1000).map((name) => `undefine ${name}`));
    await libvirt.batch([`undefine ${life}`]);
    const gone = [...names, ...profiledNames, life];
    await Promise.all(Array.from({ length: 16 }, async () => {
      for (let name = gone.shift(); name !== undefined; name = gone.shift()) await client.call(NODE, 'domain.undefine', { id: name });
    }));

    const p50 = median;
    return {
      libvirtVersion: version.trim().split('\n').join('; '),
      runs,
      startMs: compare(p50(figures.vbStart), p50(figures.lvStart)),
      destroyMs: compare(p50(figures.vbDestroy), p50(figures.lvDestroy)),
      definesPerSec: compare(defines / (vbDefineMs / 1000), defines / (lvDefineMs / 1000)),
      scaleDomains: scale,
      defineWarmup,
      definesPerSecAt100: compare(probeSize / (first.vb[1]! / 1000), probeSize / (first.lv[1]! / 1000)),
      definesPerSecAtScale: compare(probeSize / (atScale.vb / 1000), probeSize / (atScale.lv / 1000)),
      listMs: compare(p50(vbList), p50(lvList)),
      gatewayListMs: compare(p50(gwList), p50(lvList)),
      lookupInfoMs: compare(p50(vbLookup), p50(lvLookup)),
      fileMiB,
      uploadMiBs: compare(median(up.vb), median(up.lv)),
      downloadMiBs: compare(median(down.vb), median(down.lv)),
      natsBulkMiBs: round(median(natsBulk), 1),
      checksumsEqual,
      volumeCpuSecPerGiB: cpu.perGiB((volumeRuns * fileMiB) / 1024) as LibvirtBenchResult['volumeCpuSecPerGiB'],
      cores: availableParallelism(),
      idleRssKiB,
      bareNodeRssKiB,
      viaLibvirtDriver,
    };
  } finally {
    await gateway?.stop();
    await agent?.stop();
    await libvirt?.stop();
    // Domains outlive their daemon by design: whatever a failed step left running of ours goes now.
    killQemusMentioning(tag);
    await nc.close();
    await nats.stop();
    await rm(root, { recursive: true, force: true });
  }
}

export interface LibvirtDriverBenchResult {
  runs: number;
  /** ms p50: start of the defined diskless TCG domain → running (domain.state start through the driver / virsh start). */
  startMs: Compared;
  /** ms p50: destroy → shut off. */
  destroyMs: Compared;
  /** Defines per second, `domains` sequential defines (virtbus records the config; libvirt gets the XML at the first start). */
  definesPerSec: Compared;
  /** ms p50: list all `domains` (+1) domains with their states (domain.list / virsh list --all). */
  listMs: Compared;
  domains: number;
}

const DRIVER_NODE = 'benchlvd';

/**
 * virtbus through its libvirt driver (an agent with `--drivers libvirt` on the bench's libvirtd, qemu:///system) next to
 * virsh on the same daemon, for the XML the driver renders (a diskless 64 MiB TCG domain): start, destroy, define, list.
 */
export async function benchLibvirtDriver(options: { libvirt: Libvirt; natsUrl: string; client: VirtClient; root: string; tag: string; runs: number; domains: number }): Promise<LibvirtDriverBenchResult> {
  const { libvirt, client, root, tag, runs, domains } = options;
  const agent = await spawnAgent({
    node: DRIVER_NODE,
    natsUrl: options.natsUrl,
    stateDir: join(root, 'agent-lvd'),
    drivers: 'libvirt',
    extraArgs: ['--libvirt-uri', libvirt.uri],
    env: { VIRTBUS_METRICS_ADDRESS: 'off' },
  });
  const names = { vb: `${tag}-dvb`, lv: `${tag}-dlv` };
  // the virsh side runs the very XML the driver defines for its own domain (same config, another name and uuid)
  const xmlOf = (name: string) => renderDomainXml(testDomainConfig({ name, driver: 'libvirt', memory: 64, vcpus: 1 }), 'qemu');
  const xmlFile = (name: string) => join(root, `${name}.xml`);
  const defined: string[] = [];
  try {
    await writeFile(xmlFile(names.lv), xmlOf(names.lv));
    await libvirt.batch([`define ${xmlFile(names.lv)}`]);
    defined.push(names.lv);
    await client.call(DRIVER_NODE, 'domain.define', { name: names.vb, driver: 'libvirt', vcpus: 1, memory: 64 });
    const figures = await startDestroyCycles(runs, client, DRIVER_NODE, libvirt, names);

    const batch = Array.from({ length: domains }, (_, i) => ({ vb: `${tag}-dv${i}`, lv: `${tag}-dl${i}` }));
    await Promise.all(batch.map(({ lv }) => writeFile(xmlFile(lv), xmlOf(lv))));
    const lvDefineMs = (await libvirt.batch(batch.map(({ lv }) => `define ${xmlFile(lv)}`))).reduce((a, b) => a + b, 0);
    defined.push(...batch.map(({ lv }) => lv));
    const vbDefineMs = await timed(async () => {
      for (const { vb } of batch) await client.call(DRIVER_NODE, 'domain.define', { name: vb, driver: 'libvirt', vcpus: 1, memory: 64 });
    });
    const lvList = await libvirt.batch(Array.from({ length: runs }, () => 'list --all'));
    const vbList: number[] = [];
    for (let i = 0; i < runs; i++) vbList.push(await timed(() => client.call(DRIVER_NODE, 'domain.list', {})));
    for (const { vb } of batch) await client.call(DRIVER_NODE, 'domain.undefine', { id: vb });
    await client.call(DRIVER_NODE, 'domain.undefine', { id: names.vb });
    return {
      runs,
      startMs: compare(median(figures.vbStart), median(figures.lvStart)),
      destroyMs: compare(median(figures.vbDestroy), median(figures.lvDestroy)),
      definesPerSec: compare(domains / (vbDefineMs / 1000), domains / (lvDefineMs / 1000)),
      listMs: compare(median(vbList), median(lvList)),
      domains,
    };
  } finally {
    await libvirt.batch(defined.map((name) => `undefine ${name}`)).catch(() => []);
    await agent.stop();
  }
}

const MAPPING_LABELS: Record<keyof RssByMapping, string> = {
  executableCode: 'by mapping: executable code',
  executableData: 'by mapping: executable read-only data',
  anonymous: 'by mapping: anonymous (V8 heap, stacks)',
  mallocHeap: 'by mapping: malloc heap',
  sharedLibraries: 'by mapping: shared libraries',
  other: 'by mapping: other',
};
// the idle-RSS row's memory split also shows where each process's pages are mapped
memoryProbes.push(async ({ pid }) => Object.fromEntries(Object.entries(await rssByMappingKiB(pid)).map(([kind, kib]) => [MAPPING_LABELS[kind as keyof RssByMapping], kib])));

/** KiB of RSS by kind of mapping: the executable's code and read-only data, anonymous memory (V8's heap, thread stacks), malloc's heap, shared libraries. */
export type RssByMapping = Record<'executableCode' | 'executableData' | 'anonymous' | 'mallocHeap' | 'sharedLibraries' | 'other', number>;

export async function rssByMappingKiB(pid: number): Promise<RssByMapping> {
  const [smaps, exe] = await Promise.all([readFile(`/proc/${pid}/smaps`, 'utf8'), readlink(`/proc/${pid}/exe`)]);
  const sums: RssByMapping = { executableCode: 0, executableData: 0, anonymous: 0, mallocHeap: 0, sharedLibraries: 0, other: 0 };
  let kind: keyof RssByMapping = 'other';
  for (const line of smaps.split('\n')) {
    const mapping = /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (mapping) {
      const [, perms, path] = mapping as unknown as [string, string, string];
      if (path === exe) kind = perms.includes('x') ? 'executableCode' : 'executableData';
      else if (path === '[heap]') kind = 'mallocHeap';
      else if (path === '' || path.startsWith('[stack') || path.startsWith('[anon')) kind = 'anonymous';
      else if (/\.so(\.|$)/.test(path)) kind = 'sharedLibraries';
      else kind = 'other';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) sums[kind] += Number(rss[1]);
  }
  return sums;
}

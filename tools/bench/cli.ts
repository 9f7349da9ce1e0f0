import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { builtBundle, ensureLibvirt, findBinary, freePort, REPO_ROOT, spawnAgent, startLibvirt, startNatsServer, VIRSH, type Libvirt } from '@virtbus/testing';
import { domainXml } from './libvirt.js';
import { round, summarize, type LatencySummary } from './stats.js';

const run = promisify(execFile);
const DOMAINS = 5;

export interface CliBenchOptions {
  quick?: boolean;
  /** Start an idle libvirtd of the bench's own (tools/bench/libvirt.ts) and time `virsh list --all` against it. */
  withLibvirt?: boolean;
}

export interface CliBenchResult {
  runs: number;
  /** `uptime`'s load averages when the timed runs began (2 cores shared with other work: figures move with it). */
  loadAverage: string;
  /** `node -e 0`: the floor of any Node CLI on this host. */
  nodeFloor: LatencySummary;
  /** The installed `virtbus --version`: the CLI's own start-up, no network. */
  virtbusVersion: LatencySummary;
  /** The installed `virtbus list --all` (wrapper → bundle) against a local gateway and a test-driver agent. */
  virtbusList: LatencySummary;
  /** The two HTTP calls `list` makes (online node, then its domains) from a warm in-process client: the gateway's share. */
  listRequests: LatencySummary;
  /** The same command from the sources through tsx, as before the build (fewer runs: it is slow). */
  fromSources: LatencySummary;
  /** `virsh list --all` against an idle libvirtd holding as many defined domains (--with-libvirt), or why not. */
  virshList: (LatencySummary & { uri: string; domains: number }) | { notMeasured: string };
  /** du of the scratch root, of lib/virtbus, and of the CLI bundle with its source map. */
  installKiB: { total: number; lib: number; cli: number };
  ratios: { listP50VsNodeFloor: number; listP50VsVirsh: number | null; sourcesP50VsList: number };
  /** virtbus list p50 minus node -e 0 p50, ms: what the CLI and the gateway add to any Node process. */
  listOverFloorMs: number;
}

interface Command {
  command: string;
  args: string[];
}

/** Cold runs of each command, interleaved round by round so a change of load hits all of them alike. */
function timeInterleaved(runs: number, commands: Command[], cwd: string): LatencySummary[] {
  const latencies = commands.map((): number[] => []);
  const wall = commands.map(() => 0);
  for (let i = 0; i < runs; i++) {
    commands.forEach(({ command, args }, index) => {
      const begin = performance.now();
      const result = spawnSync(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
      const elapsed = performance.now() - begin;
      latencies[index]!.push(elapsed);
      wall[index]! += elapsed;
      if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
    });
  }
  return latencies.map((list, index) => summarize(list, wall[index]!));
}

function virshReachable(uri: string): string | undefined {
  const virsh = findBinary('virsh');
  if (!virsh) return 'virsh is not installed';
  const probe = spawnSync(virsh, ['-c', uri, 'list'], { encoding: 'utf8', timeout: 10_000 });
  return probe.status === 0 ? undefined : `no libvirtd answers ${uri} (${(probe.stderr || '').trim().split('\n')[0] ?? probe.status}); run with --with-libvirt`;
}

async function duKiB(path: string): Promise<number> {
  const { stdout } = await run('du', ['-sk', path]);
  return Number(stdout.split(/\s/)[0]);
}

/** Cold CLI calls: each run is a new process, like a shell script calling virtbus or virsh. */
export async function benchCli(options: CliBenchOptions = {}): Promise<CliBenchResult> {
  const runs = options.quick ? 10 : 30;
  if (options.withLibvirt) await ensureLibvirt();
  // short: libvirtd's unix socket path is limited to 107 bytes
  const work = await mkdtemp(join(options.withLibvirt ? '/tmp' : tmpdir(), 'vb-cli-'));
  const root = join(work, 'root');
  await run(process.execPath, [builtBundle('install'), '--destdir', root, '--prefix', '/usr/local', '--role', 'agent,gateway']);
  const lib = join(root, 'usr/local/lib/virtbus');
  const cliBundle = join(lib, basename(builtBundle('virtbus')));
  const installKiB = { total: await duKiB(root), lib: await duKiB(lib), cli: (await duKiB(cliBundle)) + (await duKiB(`${cliBundle}.map`)) };
  const virtbus = join(root, 'usr/local/bin/virtbus');

  const nats = await startNatsServer();
  const agent = await spawnAgent({ node: 'bench', natsUrl: nats.url, stateDir: join(work, 'agent') });
  const port = await freePort();
  const gateway = spawn(join(root, 'usr/local/bin/virtbus-gateway'), ['--config', 'none', '--nats', nats.url, '--port', String(port), '--rate-limit', '0'], {
    env: { ...process.env, LOG_LEVEL: 'warn' },
    stdio: 'ignore',
  });
  let libvirt: Libvirt | undefined;
  const url = `http://127.0.0.1:${port}`;
  try {
    for (let i = 0; ; i++) {
      const ready = await fetch(`${url}/v1/nodes`).then((response) => response.ok, () => false);
      if (ready) break;
      if (i > 300) throw new Error('the gateway did not answer');
      await sleep(100);
    }
    for (let i = 0; i < DOMAINS; i++) spawnSync(virtbus, ['--url', url, 'define', '--name', `bench-${i}`, '--driver', 'test'], { stdio: 'ignore' });
    let virshUri = 'qemu:///system';
    let virshDomains = 0;
    if (options.withLibvirt) {
      libvirt = await startLibvirt(join(work, 'lv'));
      virshUri = libvirt.uri;
      if (findBinary('qemu-system-x86_64')) {
        for (let i = 0; i < DOMAINS; i++) {
          const file = join(work, `bench-${i}.xml`);
          await writeFile(file, domainXml(`bench-${i}`));
          await run(VIRSH, ['-q', '-c', virshUri, 'define', file]);
        }
        virshDomains = DOMAINS;
      }
    }
    const unavailable = virshReachable(virshUri);
    const list = ['--url', url, 'list', '--all'];
    const commands: Command[] = [
      { command: process.execPath, args: ['-e', '0'] },
      { command: virtbus, args: ['--version'] },
      { command: virtbus, args: list },
      ...(unavailable ? [] : [{ command: VIRSH, args: ['-c', virshUri, 'list', '--all'] }]),
    ];
    // warm the page cache, the gateway's node list and libvirtd once; every timed run is still a fresh process
    timeInterleaved(2, commands, work);
    const loadAverage = (await run('uptime')).stdout.replace(/.*load average:\s*/s, '').trim();
    const [nodeFloor, virtbusVersion, virtbusList, virsh] = timeInterleaved(runs, commands, work);
    const requests: number[] = [];
    for (let i = 0; i < runs; i++) {
      const begin = performance.now();
      const { nodes } = (await (await fetch(`${url}/v1/nodes`)).json()) as { nodes: { node: string }[] };
      await (await fetch(`${url}/v1/nodes/${nodes[0]!.node}/domains?limit=1000`)).json();
      requests.push(performance.now() - begin);
    }
    const listRequests = summarize(requests, requests.reduce((sum, ms) => sum + ms, 0));
    const fromSources = timeInterleaved(options.quick ? 3 : 5, [{ command: process.execPath, args: ['--import', 'tsx', join(REPO_ROOT, 'apps/cli/src/bin.ts'), ...list] }], REPO_ROOT)[0]!;
    const virshList = virsh ? { ...virsh, uri: virshUri, domains: virshDomains } : { notMeasured: unavailable ?? 'not measured' };
    return {
      runs,
      loadAverage,
      nodeFloor: nodeFloor!,
      virtbusVersion: virtbusVersion!,
      virtbusList: virtbusList!,
      listRequests,
      fromSources,
      virshList,
      installKiB,
      ratios: {
        listP50VsNodeFloor: round(virtbusList!.p50Ms / nodeFloor!.p50Ms, 2),
        listP50VsVirsh: virsh ? round(virtbusList!.p50Ms / virsh.p50Ms, 2) : null,
        sourcesP50VsList: round(fromSources.p50Ms / virtbusList!.p50Ms, 2),
      },
      listOverFloorMs: round(virtbusList!.p50Ms - nodeFloor!.p50Ms, 1),
    };
  } finally {
    gateway.kill('SIGTERM');
    await libvirt?.stop();
    await agent.stop();
    await nats.stop();
    await rm(work, { recursive: true, force: true });
  }
}

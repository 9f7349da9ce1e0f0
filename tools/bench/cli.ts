import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { builtBundle, findBinary, freePort, REPO_ROOT, spawnAgent, startNatsServer } from '@virtbus/testing';
import { round, summarize, type LatencySummary } from './stats.js';

const run = promisify(execFile);

export interface CliBenchResult {
  runs: number;
  /** `node -e 0`: the floor of any Node CLI on this host. */
  nodeFloor: LatencySummary;
  /** The installed `virtbus list` (wrapper → bundle) against a local gateway and a test-driver agent. */
  virtbusList: LatencySummary;
  /** The same command from the sources through tsx, as before the build (fewer runs: it is slow). */
  fromSources: LatencySummary;
  virshList: LatencySummary | { notMeasured: string };
  installKiB: { total: number; lib: number };
  ratios: { listP50VsNodeFloor: number; listP50VsVirsh: number | null; sourcesP50VsList: number };
}

async function timeRuns(runs: number, command: string, args: string[], cwd: string): Promise<LatencySummary> {
  const latencies: number[] = [];
  const wall = performance.now();
  for (let i = 0; i < runs; i++) {
    const begin = performance.now();
    const result = spawnSync(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    latencies.push(performance.now() - begin);
    if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  }
  return summarize(latencies, performance.now() - wall);
}

function virshReachable(): string | undefined {
  const virsh = findBinary('virsh');
  if (!virsh) return 'virsh is not installed';
  const probe = spawnSync(virsh, ['-c', 'qemu:///system', 'list'], { encoding: 'utf8', timeout: 10_000 });
  return probe.status === 0 ? undefined : `no libvirtd answers qemu:///system (${(probe.stderr || '').trim().split('\n')[0] ?? probe.status})`;
}

async function duKiB(path: string): Promise<number> {
  const { stdout } = await run('du', ['-sk', path]);
  return Number(stdout.split(/\s/)[0]);
}

/** Cold CLI calls: each run is a new process, like a shell script calling virtbus or virsh. */
export async function benchCli(options: { quick?: boolean } = {}): Promise<CliBenchResult> {
  const runs = options.quick ? 10 : 30;
  const work = await mkdtemp(join(tmpdir(), 'virtbus-bench-cli-'));
  const root = join(work, 'root');
  await run(process.execPath, [builtBundle('install'), '--destdir', root, '--prefix', '/usr/local', '--role', 'agent,gateway']);
  const installKiB = { total: await duKiB(root), lib: await duKiB(join(root, 'usr/local/lib/virtbus')) };
  const virtbus = join(root, 'usr/local/bin/virtbus');

  const nats = await startNatsServer();
  const agent = await spawnAgent({ node: 'bench', natsUrl: nats.url, stateDir: join(work, 'agent') });
  const port = await freePort();
  const gateway = spawn(join(root, 'usr/local/bin/virtbus-gateway'), ['--config', 'none', '--nats', nats.url, '--port', String(port), '--rate-limit', '0'], {
    env: { ...process.env, LOG_LEVEL: 'warn' },
    stdio: 'ignore',
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    for (let i = 0; ; i++) {
      const ready = await fetch(`${url}/v1/nodes`).then((response) => response.ok, () => false);
      if (ready) break;
      if (i > 300) throw new Error('the gateway did not answer');
      await sleep(100);
    }
    for (let i = 0; i < 5; i++) spawnSync(virtbus, ['--url', url, 'define', '--name', `bench-${i}`, '--driver', 'test'], { stdio: 'ignore' });
    const list = ['--url', url, 'list', '--all'];
    // warm the page cache and the gateway's node list once; every timed run is still a fresh process
    await timeRuns(2, virtbus, list, work);
    const nodeFloor = await timeRuns(runs, process.execPath, ['-e', '0'], work);
    const virtbusList = await timeRuns(runs, virtbus, list, work);
    const fromSources = await timeRuns(options.quick ? 3 : 5, process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'apps/cli/src/bin.ts'), ...list], REPO_ROOT);
    const unavailable = virshReachable();
    const virshList = unavailable ? { notMeasured: unavailable } : await timeRuns(runs, findBinary('virsh')!, ['-c', 'qemu:///system', 'list', '--all'], work);
    return {
      runs,
      nodeFloor,
      virtbusList,
      fromSources,
      virshList,
      installKiB,
      ratios: {
        listP50VsNodeFloor: round(virtbusList.p50Ms / nodeFloor.p50Ms, 2),
        listP50VsVirsh: 'p50Ms' in virshList ? round(virtbusList.p50Ms / virshList.p50Ms, 2) : null,
        sourcesP50VsList: round(fromSources.p50Ms / virtbusList.p50Ms, 2),
      },
    };
  } finally {
    gateway.kill('SIGTERM');
    await agent.stop();
    await nats.stop();
    await rm(work, { recursive: true, force: true });
  }
}

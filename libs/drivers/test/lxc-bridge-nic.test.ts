import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBusyboxRootfs, hasBinaryOrSkip } from '@virtbus/testing';

const LXC = hasBinaryOrSkip('lxc-start') && hasBinaryOrSkip('ip');
const execFileAsync = promisify(execFile);
const BRIDGE = 'vbtbr0';
const MAC = `52:54:00:${[...randomBytes(3)].map((byte) => byte.toString(16).padStart(2, '0')).join(':')}`;
const RUNNER = join(import.meta.dirname, 'support/lxc-bridge-nic.run.ts');

interface Link {
  ifname: string;
}

interface NetCounters {
  name: string;
  rxBytes: number;
  rxPackets: number;
  txBytes: number;
  txPackets: number;
}

interface RunnerResult {
  event: 'result';
  ping: { exitCode: number; stdout: string; stderr: string; timedOut: boolean };
  macInside: string;
  hostEnds: { ifname: string; master: string | null }[];
  net: NetCounters[] | null;
  afterDestroy: string[];
  state: string;
}

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8' });
}

async function vethsIn(namespace?: string): Promise<string[]> {
  const { stdout } = await execFileAsync('ip', [...(namespace ? ['-n', namespace] : []), '-j', 'link']);
  return (JSON.parse(stdout) as Link[]).map((link) => link.ifname).filter((name) => name.startsWith('vbl'));
}

/** `ip netns exec` remounts /sys, hiding the cgroup mounts LXC needs: mount the same hierarchies again in its private mount namespace. */
function cgroupRemountScript(): string {
  const commands: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const mountPoint = left.split(' ')[4]!;
    const [fstype, , superOptions] = right.split(' ');
    if (!mountPoint.startsWith('/sys/fs/cgroup')) continue;
    const options = (superOptions ?? '').split(',').filter((option) => option !== 'rw' && option !== 'ro').join(',');
    if (fstype === 'tmpfs') commands.push(`mount -t tmpfs -o ${options || 'mode=755'} cgroup_root ${mountPoint}`);
    else if (fstype === 'cgroup' || fstype === 'cgroup2') commands.push(`mkdir -p ${mountPoint} && mount -t ${fstype} ${options ? `-o ${options}` : ''} ${fstype} ${mountPoint}`);
  }
  return commands.join(' && ');
}

/** Live processes whose command line mentions `needle`. */
function processesMentioning(needle: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) found.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

function killPid(pid: number | undefined): void {
  if (!pid || pid === process.pid) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

describe.skipIf(!LXC)('lxc driver: a bridge NIC inside a test network namespace', () => {
  const namespace = `vbt-${randomBytes(4).toString('hex')}`;
  let stateDir: string | undefined;
  let rootfs: string;
  let child: ChildProcess | undefined;
  const containerPids: number[] = [];
  const hostVethsSeen = new Set<string>();
  let hostWatch: NodeJS.Timeout | undefined;

  const checkHost = async () => {
    for (const name of await vethsIn().catch(() => [])) hostVethsSeen.add(name);
  };

  beforeAll(async () => {
    await checkHost();
    hostWatch = setInterval(() => void checkHost(), 100);
    rootfs = await ensureBusyboxRootfs();
    stateDir = await mkdtemp(join(tmpdir(), 'virtbus-lxc-nic-'));
    ip('netns', 'add', namespace);
    ip('-n', namespace, 'link', 'set', 'lo', 'up');
    ip('-n', namespace, 'link', 'add', BRIDGE, 'type', 'bridge');
    ip('-n', namespace, 'addr', 'add', '10.213.0.1/24', 'dev', BRIDGE);
    ip('-n', namespace, 'link', 'set', BRIDGE, 'up');
  });

  afterAll(async () => {
    if (hostWatch) clearInterval(hostWatch);
    killPid(child?.exitCode === null ? child.pid : undefined);
    for (const pid of containerPids) killPid(pid);
    // The lxc monitor and any lxc-* tool name the state dir on their command line.
    if (stateDir) for (const pid of processesMentioning(stateDir)) killPid(pid);
    try {
      ip('netns', 'del', namespace);
    } catch {
      // never created
    }
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
    expect(ip('netns', 'list')).not.toContain(namespace);
    await checkHost();
    expect([...hostVethsSeen]).toEqual([]);
  });

  it('gets a veth enslaved to the bridge, pings the bridge, counts packets, and removes the veth on destroy', async () => {
    const remount = cgroupRemountScript();
    child = spawn(
      'ip',
      ['netns', 'exec', namespace, '/bin/sh', '-c', `${remount} && exec "$0" "$@"`, process.execPath, '--import', 'tsx', RUNNER],
      {
        cwd: join(import.meta.dirname, '..'),
        env: { ...process.env, VBT_STATE_DIR: stateDir, VBT_ROOTFS: rootfs, VBT_BRIDGE: BRIDGE, VBT_MAC: MAC },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      for (const line of stdout.split('\n')) {
        if (!line.startsWith('{"event":"started"')) continue;
        const started = JSON.parse(line) as { initPid?: number; monitorPid?: number };
        for (const pid of [started.initPid, started.monitorPid]) if (pid && !containerPids.includes(pid)) containerPids.push(pid);
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const exitCode = await new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    const lines = stdout.split('\n').filter((line) => line.startsWith('{'));
    const result = lines.map((line) => JSON.parse(line) as { event: string }).find((line) => line.event === 'result') as RunnerResult | undefined;
    expect(result, `runner exit ${exitCode}\nstdout: ${stdout}\nstderr: ${stderr}`).toBeDefined();
    expect(exitCode).toBe(0);
    console.info(`lxc bridge NIC: ${JSON.stringify(result)}`);

    expect(result!.ping.exitCode, result!.ping.stdout + result!.ping.stderr).toBe(0);
    expect(result!.ping.stdout).toMatch(/1 packets transmitted, 1 packets received/);
    expect(result!.macInside).toBe(MAC);
    expect(result!.hostEnds).toHaveLength(1);
    expect(result!.hostEnds[0]!.ifname).toMatch(/^vbl[0-9a-f]{8}0$/);
    expect(result!.hostEnds[0]!.master).toBe(BRIDGE);
    const eth0 = result!.net?.find((counters) => counters.name === 'eth0');
    expect(eth0, JSON.stringify(result!.net)).toBeDefined();
    expect(eth0!.rxPackets).toBeGreaterThan(0);
    expect(eth0!.txPackets).toBeGreaterThan(0);
    expect(eth0!.rxBytes).toBeGreaterThan(0);
    expect(eth0!.txBytes).toBeGreaterThan(0);
    expect(result!.state).toBe('shutoff');
    expect(result!.afterDestroy).toEqual([]);
    expect(await vethsIn(namespace)).toEqual([]);
    if (stateDir) expect(processesMentioning(stateDir)).toEqual([]);
    await checkHost();
    expect([...hostVethsSeen]).toEqual([]);
  }, 120_000);
});

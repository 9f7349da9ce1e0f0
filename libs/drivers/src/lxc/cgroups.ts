import { existsSync, readFileSync } from 'node:fs';
import { readFile, rmdir, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export type CgroupVersion = 'v1' | 'v2';

const CGROUP_ROOT = '/sys/fs/cgroup';
const USER_HZ_TO_NS = 10_000_000;

/** A pure v2 host has controllers in the root's cgroup.controllers; a tmpfs root (v1 or hybrid) has no such file. */
export function detectCgroupVersion(root = CGROUP_ROOT): CgroupVersion {
  const file = join(root, 'cgroup.controllers');
  if (!existsSync(file)) return 'v1';
  return readFileSync(file, 'utf8').trim().length > 0 ? 'v2' : 'v1';
}

export interface CgroupMount {
  /** Controllers of a v1 hierarchy (`name=systemd` included); empty for the v2 hierarchy. */
  controllers: string[];
  mountPoint: string;
  /** The cgroup path mounted at mountPoint (`/` outside containers). */
  root: string;
  version: CgroupVersion;
}

/** Cgroup hierarchies from /proc/self/mountinfo text. */
export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const fields = left.split(' ');
    const [fsType, , superOptions = ''] = right.split(' ');
    const root = fields[3];
    const mountPoint = fields[4];
    if (!root || !mountPoint) continue;
    if (fsType === 'cgroup2') mounts.push({ controllers: [], mountPoint, root, version: 'v2' });
    if (fsType === 'cgroup') {
      const controllers = superOptions.split(',').filter((option) => option !== 'rw' && option !== 'ro' && !option.startsWith('release_agent') && option !== 'clone_children' && option !== 'noprefix' && option !== 'xattr');
      mounts.push({ controllers, mountPoint, root, version: 'v1' });
    }
  }
  return mounts;
}

export interface ProcessCgroup {
  hierarchyId: number;
  /** Empty for the v2 entry (`0::/path`). */
  controllers: string[];
  path: string;
}

/** /proc/<pid>/cgroup text: `id:controllers:path` lines. */
export function parseProcCgroup(text: string): ProcessCgroup[] {
  const entries: ProcessCgroup[] = [];
  for (const line of text.split('\n')) {
    const match = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!match) continue;
    entries.push({ hierarchyId: Number(match[1]), controllers: match[2] ? match[2].split(',') : [], path: match[3] ?? '/' });
  }
  return entries;
}

/** Keeps the container's own cgroup when init moved itself into a child cgroup (`…/lxc.payload.NAME/init.scope`). */
export function payloadPath(path: string, name: string): string {
  const marker = `/lxc.payload.${name}`;
  const index = path.indexOf(marker);
  return index < 0 ? path : path.slice(0, index + marker.length);
}

/** Host directories of a process's cgroups: one per v1 hierarchy (keyed by each controller) and `unified` for v2. */
export function cgroupDirectories(mounts: readonly CgroupMount[], processCgroups: readonly ProcessCgroup[], name: string): Map<string, string> {
  const directories = new Map<string, string>();
  for (const entry of processCgroups) {
    const version: CgroupVersion = entry.hierarchyId === 0 && entry.controllers.length === 0 ? 'v2' : 'v1';
    const mount = mounts.find((candidate) =>
      version === 'v2' ? candidate.version === 'v2' : candidate.version === 'v1' && entry.controllers.every((controller) => candidate.controllers.includes(controller)),
    );
    if (!mount) continue;
    const path = payloadPath(entry.path, name);
    const relative = mount.root === '/' ? path : path.startsWith(mount.root) ? path.slice(mount.root.length) : path;
    const directory = join(mount.mountPoint, relative);
    if (version === 'v2') directories.set('unified', directory);
    else for (const controller of entry.controllers) directories.set(controller, directory);
  }
  return directories;
}

export interface CgroupStats {
  cpu?: { timeNs: number; userNs?: number; systemNs?: number };
  memory?: { currentBytes: number; limitBytes?: number; rssBytes?: number; failcnt?: number; oomKills?: number };
  pids?: { current: number; limit?: number };
}

/** `key value` lines (memory.stat, cpu.stat, cpuacct.stat, memory.events, memory.oom_control). */
export function parseFlatKeyed(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined && /^-?\d+$/.test(value)) values.set(key, Number(value));
  }
  return values;
}

/** A limit file: a number, or `max` (v2) / a page-rounded huge number (v1 unlimited) meaning no limit. */
export function parseLimit(text: string): number | undefined {
  const value = text.trim();
  if (value === 'max' || !/^\d+$/.test(value)) return undefined;
  const number = Number(value);
  return number >= 2 ** 62 ? undefined : number;
}

function parseCount(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = text.trim();
  return /^\d+$/.test(value) ? Number(value) : undefined;
}

/** Contents of the v1 files the stats need, keyed by file name; absent files are undefined. */
export type CgroupFiles = Record<string, string | undefined>;

export const V1_FILES = {
  cpuacct: ['cpuacct.usage', 'cpuacct.usage_user', 'cpuacct.usage_sys', 'cpuacct.stat'],
  memory: ['memory.usage_in_bytes', 'memory.limit_in_bytes', 'memory.stat', 'memory.failcnt', 'memory.oom_control'],
  pids: ['pids.current', 'pids.max'],
} as const;

export const V2_FILES = ['cpu.stat', 'memory.current', 'memory.max', 'memory.stat', 'memory.events', 'pids.current', 'pids.max'] as const;

export function parseV1Stats(files: CgroupFiles): CgroupStats {
  const stats: CgroupStats = {};
  const usage = parseCount(files['cpuacct.usage']);
  if (usage !== undefined) {
    const ticks = files['cpuacct.stat'] === undefined ? undefined : parseFlatKeyed(files['cpuacct.stat']);
    const userNs = parseCount(files['cpuacct.usage_user']) ?? mul(ticks?.get('user'), USER_HZ_TO_NS);
    const systemNs = parseCount(files['cpuacct.usage_sys']) ?? mul(ticks?.get('system'), USER_HZ_TO_NS);
    stats.cpu = { timeNs: usage, ...(userNs === undefined ? {} : { userNs }), ...(systemNs === undefined ? {} : { systemNs }) };
  }
  const current = parseCount(files['memory.usage_in_bytes']);
  if (current !== undefined) {
    const memoryStat = files['memory.stat'] === undefined ? undefined : parseFlatKeyed(files['memory.stat']);
    const oom = files['memory.oom_control'] === undefined ? undefined : parseFlatKeyed(files['memory.oom_control']);
    stats.memory = compact({
      currentBytes: current,
      limitBytes: files['memory.limit_in_bytes'] === undefined ? undefined : parseLimit(files['memory.limit_in_bytes']),
      rssBytes: memoryStat?.get('total_rss') ?? memoryStat?.get('rss'),
      failcnt: parseCount(files['memory.failcnt']),
      oomKills: oom?.get('oom_kill'),
    });
  }
  stats.pids = parsePids(files);
  if (!stats.pids) delete stats.pids;
  return stats;
}

export function parseV2Stats(files: CgroupFiles): CgroupStats {
  const stats: CgroupStats = {};
  if (files['cpu.stat'] !== undefined) {
    const cpu = parseFlatKeyed(files['cpu.stat']);
    const usage = cpu.get('usage_usec');
    if (usage !== undefined) {
      stats.cpu = compact({ timeNs: usage * 1000, userNs: mul(cpu.get('user_usec'), 1000), systemNs: mul(cpu.get('system_usec'), 1000) });
    }
  }
  const current = parseCount(files['memory.current']);
  if (current !== undefined) {
    const memoryStat = files['memory.stat'] === undefined ? undefined : parseFlatKeyed(files['memory.stat']);
    const events = files['memory.events'] === undefined ? undefined : parseFlatKeyed(files['memory.events']);
    stats.memory = compact({
      currentBytes: current,
      limitBytes: files['memory.max'] === undefined ? undefined : parseLimit(files['memory.max']),
      rssBytes: memoryStat?.get('anon'),
      failcnt: events?.get('max'),
      oomKills: events?.get('oom_kill'),
    });
  }
  stats.pids = parsePids(files);
  if (!stats.pids) delete stats.pids;
  return stats;
}

function parsePids(files: CgroupFiles): CgroupStats['pids'] {
  const current = parseCount(files['pids.current']);
  if (current === undefined) return undefined;
  const limit = files['pids.max'] === undefined ? undefined : parseLimit(files['pids.max']);
  return limit === undefined ? { current } : { current, limit };
}

function mul(value: number | undefined, factor: number): number | undefined {
  return value === undefined ? undefined : value * factor;
}

function compact<T extends Record<string, number | undefined>>(value: T): { [K in keyof T]: T[K] } {
  return Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined)) as { [K in keyof T]: T[K] };
}

export interface NetDevCounters {
  name: string;
  rxBytes: number;
  rxPackets: number;
  rxErrors: number;
  rxDrops: number;
  txBytes: number;
  txPackets: number;
  txErrors: number;
  txDrops: number;
}

/** /proc/<pid>/net/dev text, loopback left out. */
export function parseNetDev(text: string): NetDevCounters[] {
  const interfaces: NetDevCounters[] = [];
  for (const line of text.split('\n')) {
    const match = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (!match || match[1] === 'lo') continue;
    const numbers = (match[2] ?? '').trim().split(/\s+/).map(Number);
    if (numbers.length < 16 || numbers.some((value) => !Number.isFinite(value))) continue;
    const [rxBytes, rxPackets, rxErrors, rxDrops, , , , , txBytes, txPackets, txErrors, txDrops] = numbers as [number, number, number, number, number, number, number, number, number, number, number, number];
    interfaces.push({ name: match[1]!, rxBytes, rxPackets, rxErrors, rxDrops, txBytes, txPackets, txErrors, txDrops });
  }
  return interfaces;
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Reads the container's cgroup files for the host's version and parses them. */
export async function readCgroupStats(version: CgroupVersion, directories: ReadonlyMap<string, string>): Promise<CgroupStats> {
  const files: CgroupFiles = {};
  if (version === 'v2') {
    const directory = directories.get('unified');
    if (!directory) return {};
    await Promise.all(V2_FILES.map(async (file) => (files[file] = await readOptional(join(directory, file)))));
    return parseV2Stats(files);
  }
  const reads: Promise<void>[] = [];
  for (const [controller, names] of Object.entries(V1_FILES)) {
    const directory = directories.get(controller);
    if (!directory) continue;
    for (const file of names) reads.push(readOptional(join(directory, file)).then((text) => void (files[file] = text)));
  }
  await Promise.all(reads);
  return parseV1Stats(files);
}

/** The cgroup directories of a running process (its container's payload cgroup in every hierarchy). */
export async function processCgroupDirectories(pid: number, name: string): Promise<Map<string, string>> {
  const [mountinfo, cgroup] = await Promise.all([readFile('/proc/self/mountinfo', 'utf8'), readFile(`/proc/${pid}/cgroup`, 'utf8')]);
  return cgroupDirectories(parseCgroupMounts(mountinfo), parseProcCgroup(cgroup), name);
}

/**
 * LXC's monitor parks itself in `lxc.pivot` beside the containers before it exits and never removes it.
 * Removes those empty leftovers next to the given container cgroups unless another LXC monitor still lives there.
 */
export async function pruneLxcPivots(containerDirectories: Iterable<string>): Promise<void> {
  for (const parent of new Set([...containerDirectories].map((directory) => dirname(directory)))) {
    const siblings = await readdir(parent).catch(() => [] as string[]);
    if (!siblings.includes('lxc.pivot') || siblings.some((entry) => entry.startsWith('lxc.monitor.'))) continue;
    await rmdir(join(parent, 'lxc.pivot')).catch(() => undefined);
  }
}

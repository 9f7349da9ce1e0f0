import { readdir, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { DriverInfo, HostCapabilities, HostCpu, NodeInfo } from '@virtbus/api-contract';

/** Parses a kernel cpulist such as `0-3,8,10-11`. */
export function parseCpuList(text: string): number[] {
  const cpus: number[] = [];
  for (const part of text.trim().split(',').filter(Boolean)) {
    const [from, to] = part.split('-').map(Number);
    if (from === undefined || Number.isNaN(from)) continue;
    for (let cpu = from; cpu <= (to ?? from); cpu++) cpus.push(cpu);
  }
  return cpus;
}

export function parseCpuInfo(text: string): NodeInfo['cpu'] {
  const processors = text.split(/\n\s*\n/).filter((block) => /^processor\s*:/m.test(block));
  const field = (block: string, name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(block)?.[1]?.trim();
  const first = processors[0] ?? '';
  const sockets = new Set(processors.map((block) => field(block, 'physical id') ?? '0'));
  const cores = new Set(processors.map((block) => `${field(block, 'physical id') ?? '0'}/${field(block, 'core id') ?? field(block, 'processor')}`));
  const count = processors.length;
  const socketCount = Math.max(1, sockets.size);
  const coresPerSocket = Math.max(1, Math.round(cores.size / socketCount));
  return {
    model: field(first, 'model name') ?? 'unknown',
    count,
    sockets: socketCount,
    coresPerSocket,
    threadsPerCore: Math.max(1, Math.round(count / (socketCount * coresPerSocket))),
    mhz: Number(field(first, 'cpu MHz') ?? 0) || 0,
  };
}

/** The host CPU as migration planning compares it (the first processor's vendor, model name and flags). */
export function parseHostCpu(text: string, arch = process.arch === 'x64' ? 'x86_64' : process.arch): HostCpu {
  const first = text.split(/\n\s*\n/).find((block) => /^processor\s*:/m.test(block)) ?? '';
  const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(first)?.[1]?.trim();
  return { arch, vendor: field('vendor_id') ?? 'unknown', model: field('model name') ?? 'unknown', flags: (field('flags') ?? '').split(/\s+/).filter(Boolean).sort() };
}

export async function readHostCpu(): Promise<HostCpu> {
  return parseHostCpu(await readFile('/proc/cpuinfo', 'utf8'));
}

/** virsh capabilities: the host CPU, NUMA cells and drivers. */
export async function readHostCapabilities(node: string, drivers: DriverInfo[]): Promise<HostCapabilities> {
  const [cpu, numa] = await Promise.all([readHostCpu(), numaCells()]);
  return { node, cpu, numa, drivers };
}

/** Values of /proc/meminfo or a NUMA node's meminfo, in bytes. */
export function parseMeminfo(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^(?:Node \d+ )?([\w()]+):\s+(\d+)(?:\s+kB)?/.exec(line);
    if (match) values.set(match[1]!, Number(match[2]) * (line.includes('kB') ? 1024 : 1));
  }
  return values;
}

async function numaCells(): Promise<NodeInfo['numa']> {
  const base = '/sys/devices/system/node';
  let entries: string[];
  try {
    entries = (await readdir(base)).filter((entry) => /^node\d+$/.test(entry));
  } catch {
    return [];
  }
  const cells = await Promise.all(
    entries.map(async (entry) => {
      const [cpulist, meminfo] = await Promise.all([readFile(`${base}/${entry}/cpulist`, 'utf8'), readFile(`${base}/${entry}/meminfo`, 'utf8')]);
      const memory = parseMeminfo(meminfo);
      return {
        id: Number(entry.slice(4)),
        cpus: parseCpuList(cpulist),
        memoryTotalBytes: memory.get('MemTotal') ?? 0,
        memoryFreeBytes: memory.get('MemFree') ?? 0,
      };
    }),
  );
  return cells.sort((a, b) => a.id - b.id);
}

export async function readNodeInfo(node: string, agentVersion: string, startedAt: string, drivers: DriverInfo[]): Promise<NodeInfo> {
  const [cpuinfo, meminfo, numa] = await Promise.all([readFile('/proc/cpuinfo', 'utf8'), readFile('/proc/meminfo', 'utf8'), numaCells()]);
  const memory = parseMeminfo(meminfo);
  return {
    node,
    hostname: hostname(),
    agentVersion,
    apiVersion: 'v1',
    startedAt,
    cpu: parseCpuInfo(cpuinfo),
    memory: {
      totalBytes: memory.get('MemTotal') ?? 0,
      freeBytes: memory.get('MemFree') ?? 0,
      availableBytes: memory.get('MemAvailable') ?? memory.get('MemFree') ?? 0,
    },
    numa,
    drivers,
  };
}

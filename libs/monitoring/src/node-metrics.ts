import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Counter, Gauge, type Registry } from 'prom-client';

/** Column order of the `cpu` lines in /proc/stat (proc(5)); guest time is already counted in user/nice. */
export const CPU_MODES = ['user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal'] as const;
export type CpuMode = (typeof CPU_MODES)[number];

/** /proc/stat counts in USER_HZ, which Linux fixes at 100 for userspace on every architecture we run on. */
const USER_HZ = 100;

/** Seconds per mode summed over all CPUs, from the aggregate `cpu` line of /proc/stat. */
export function parseProcStat(text: string): Record<CpuMode, number> {
  const line = text.split('\n').find((candidate) => candidate.startsWith('cpu '));
  if (!line) throw new Error('/proc/stat has no aggregate cpu line');
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  const result = {} as Record<CpuMode, number>;
  CPU_MODES.forEach((mode, index) => (result[mode] = (fields[index] ?? 0) / USER_HZ));
  return result;
}

export interface NodeMemory {
  totalBytes: number;
  freeBytes: number;
  availableBytes: number;
}

function meminfoFields(text: string, prefix = ''): Map<string, number> {
  const fields = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^(\S+):\s+(\d+)(?:\s+kB)?\s*$/.exec(line.startsWith(prefix) ? line.slice(prefix.length) : '');
    if (match) fields.set(match[1]!, Number(match[2]) * (line.trimEnd().endsWith('kB') ? 1024 : 1));
  }
  return fields;
}

/** Total, free and available memory from /proc/meminfo (values in kB there). */
export function parseMeminfo(text: string): NodeMemory {
  const fields = meminfoFields(text);
  const total = fields.get('MemTotal');
  const free = fields.get('MemFree');
  if (total === undefined || free === undefined) throw new Error('/proc/meminfo lacks MemTotal or MemFree');
  return { totalBytes: total, freeBytes: free, availableBytes: fields.get('MemAvailable') ?? free };
}

export interface NumaCellMemory {
  cell: number;
  totalBytes: number;
  freeBytes: number;
}

/** One cell's /sys/devices/system/node/nodeN/meminfo ("Node N MemTotal: … kB"). */
export function parseNumaMeminfo(cell: number, text: string): NumaCellMemory {
  const fields = meminfoFields(text, `Node ${cell} `);
  const total = fields.get('MemTotal');
  const free = fields.get('MemFree');
  if (total === undefined || free === undefined) throw new Error(`node${cell}/meminfo lacks MemTotal or MemFree`);
  return { cell, totalBytes: total, freeBytes: free };
}

export interface NodeMetricsOptions {
  registry: Registry;
  node: string;
  /** Roots to read from; tests point them at fixtures. */
  procRoot?: string;
  sysRoot?: string;
}

/** Free and total memory of every NUMA cell from sysfs; none on kernels without NUMA. */
export async function readNumaCells(sysRoot = '/sys'): Promise<NumaCellMemory[]> {
  const dir = join(sysRoot, 'devices/system/node');
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return []; // kernels without NUMA support have no such directory
  }
  const cells = names.filter((name) => /^node\d+$/.test(name)).map((name) => Number(name.slice(4)));
  return Promise.all(cells.sort((a, b) => a - b).map(async (cell) => parseNumaMeminfo(cell, await readFile(join(dir, `node${cell}`, 'meminfo'), 'utf8'))));
}

/** Host CPU seconds by mode, memory and per-NUMA-cell memory, read from procfs/sysfs on each scrape. */
export function createNodeMetrics(options: NodeMetricsOptions): void {
  const { registry, node } = options;
  const procRoot = options.procRoot ?? '/proc';
  const sysRoot = options.sysRoot ?? '/sys';

  new Counter({
    name: 'virtbus_node_cpu_seconds_total',
    help: 'Seconds the node CPUs spent in each mode, summed over all CPUs.',
    labelNames: ['node', 'mode'],
    registers: [registry],
    async collect() {
      const seconds = parseProcStat(await readFile(join(procRoot, 'stat'), 'utf8'));
      this.reset();
      for (const mode of CPU_MODES) this.inc({ node, mode }, seconds[mode]);
    },
  });

  const memoryGauge = (name: string, help: string, pick: (memory: NodeMemory) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['node'],
      registers: [registry],
      async collect() {
        this.set({ node }, pick(parseMeminfo(await readFile(join(procRoot, 'meminfo'), 'utf8'))));
      },
    });
  memoryGauge('virtbus_node_memory_total_bytes', 'Node memory in bytes (MemTotal).', (m) => m.totalBytes);
  memoryGauge('virtbus_node_memory_free_bytes', 'Unused node memory in bytes (MemFree).', (m) => m.freeBytes);
  memoryGauge('virtbus_node_memory_available_bytes', 'Node memory available for new work in bytes (MemAvailable).', (m) => m.availableBytes);

  const numaGauge = (name: string, help: string, pick: (cell: NumaCellMemory) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['node', 'cell'],
      registers: [registry],
      async collect() {
        const cells = await readNumaCells(sysRoot);
        this.reset();
        for (const cell of cells) this.set({ node, cell: String(cell.cell) }, pick(cell));
      },
    });
  numaGauge('virtbus_node_numa_memory_total_bytes', 'Memory of one NUMA cell in bytes.', (c) => c.totalBytes);
  numaGauge('virtbus_node_numa_memory_free_bytes', 'Free memory of one NUMA cell in bytes.', (c) => c.freeBytes);
}

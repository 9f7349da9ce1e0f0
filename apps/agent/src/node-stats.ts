import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { NodeStats } from '@virtbus/api-contract';
import { parseMeminfo, parseNumaMeminfo, parseProcStat } from '@virtbus/monitoring';

async function numaCells(sysRoot: string): Promise<NodeStats['numa']> {
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

/** Host CPU seconds by mode, memory and free memory per NUMA cell, read from procfs/sysfs now. */
export async function readNodeStats(node: string, procRoot = '/proc', sysRoot = '/sys'): Promise<NodeStats> {
  const [stat, meminfo, numa] = await Promise.all([readFile(join(procRoot, 'stat'), 'utf8'), readFile(join(procRoot, 'meminfo'), 'utf8'), numaCells(sysRoot)]);
  return { node, collectedAt: new Date().toISOString(), cpu: parseProcStat(stat), memory: parseMeminfo(meminfo), numa };
}

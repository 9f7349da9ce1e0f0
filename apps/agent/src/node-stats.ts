import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { NodeStats } from '@virtbus/api-contract';
import { parseMeminfo, parseProcStat, readNumaCells } from '@virtbus/monitoring';

/** Host CPU seconds by mode, memory and free memory per NUMA cell, read from procfs/sysfs now. */
export async function readNodeStats(node: string, procRoot = '/proc', sysRoot = '/sys'): Promise<NodeStats> {
  const [stat, meminfo, numa] = await Promise.all([readFile(join(procRoot, 'stat'), 'utf8'), readFile(join(procRoot, 'meminfo'), 'utf8'), readNumaCells(sysRoot)]);
  return { node, collectedAt: new Date().toISOString(), cpu: parseProcStat(stat), memory: parseMeminfo(meminfo), numa };
}

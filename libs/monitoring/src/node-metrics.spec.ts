import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNodeMetrics, parseMeminfo, parseNumaMeminfo, parseProcStat } from './node-metrics.js';

const PROC_STAT = `cpu  22770 15 8372 122861 981 7 348 2397 40 0
cpu0 10134 0 3865 63343 274 0 45 1211 0 0
cpu1 12636 15 4506 59518 707 7 302 1185 40 0
intr 5190283 0 9 0 0
ctxt 9938391
btime 1763830000
processes 41262
`;

const MEMINFO = `MemTotal:        4810968 kB
MemFree:         3720736 kB
MemAvailable:    4301112 kB
Buffers:           69848 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
`;

const NODE1_MEMINFO = `Node 1 MemTotal:        2097152 kB
Node 1 MemFree:         1048576 kB
Node 1 MemUsed:         1048576 kB
Node 1 HugePages_Total:     0
`;

describe('node metric parsers', () => {
  it('parses /proc/stat CPU modes into seconds (USER_HZ 100)', () => {
    expect(parseProcStat(PROC_STAT)).toEqual({
      user: 227.7,
      nice: 0.15,
      system: 83.72,
      idle: 1228.61,
      iowait: 9.81,
      irq: 0.07,
      softirq: 3.48,
      steal: 23.97,
    });
  });

  it('rejects a /proc/stat without an aggregate cpu line', () => {
    expect(() => parseProcStat('cpu0 1 2 3\n')).toThrow(/aggregate cpu/);
  });

  it('parses /proc/meminfo in bytes', () => {
    expect(parseMeminfo(MEMINFO)).toEqual({ totalBytes: 4810968 * 1024, freeBytes: 3720736 * 1024, availableBytes: 4301112 * 1024 });
  });

  it('parses one NUMA cell meminfo', () => {
    expect(parseNumaMeminfo(1, NODE1_MEMINFO)).toEqual({ cell: 1, totalBytes: 2 * 1024 ** 3, freeBytes: 1024 ** 3 });
    expect(() => parseNumaMeminfo(0, NODE1_MEMINFO)).toThrow(/node0/);
  });
});

describe('createNodeMetrics', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'virtbus-node-metrics-'));
    await mkdir(join(root, 'proc'));
    await writeFile(join(root, 'proc/stat'), PROC_STAT);
    await writeFile(join(root, 'proc/meminfo'), MEMINFO);
    for (const cell of [0, 1]) {
      await mkdir(join(root, `sys/devices/system/node/node${cell}`), { recursive: true });
      await writeFile(join(root, `sys/devices/system/node/node${cell}/meminfo`), NODE1_MEMINFO.replaceAll('Node 1', `Node ${cell}`));
    }
    await writeFile(join(root, 'sys/devices/system/node/online'), '0-1\n');
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('exports CPU by mode, memory and per-cell memory from the given roots', async () => {
    const registry = new Registry();
    createNodeMetrics({ registry, node: 'n1', procRoot: join(root, 'proc'), sysRoot: join(root, 'sys') });
    const text = await registry.metrics();
    expect(text).toContain('virtbus_node_cpu_seconds_total{node="n1",mode="idle"} 1228.61');
    expect(text).toContain('virtbus_node_memory_available_bytes{node="n1"} 4404338688');
    expect(text).toContain('virtbus_node_numa_memory_free_bytes{node="n1",cell="1"} 1073741824');
    expect(text).toContain('virtbus_node_numa_memory_total_bytes{node="n1",cell="0"} 2147483648');
  });

  it('reads this host’s real procfs and sysfs', async () => {
    const registry = new Registry();
    createNodeMetrics({ registry, node: 'here' });
    const metrics = await registry.getMetricsAsJSON();
    const total = metrics.find((m) => m.name === 'virtbus_node_memory_total_bytes')?.values[0]?.value ?? 0;
    expect(total).toBeGreaterThan(0);
    const idle = metrics.find((m) => m.name === 'virtbus_node_cpu_seconds_total')?.values.find((v) => v.labels.mode === 'idle');
    expect(idle?.value).toBeGreaterThan(0);
  });
});

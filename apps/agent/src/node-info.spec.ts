import { describe, expect, it } from 'vitest';
import { parseCpuInfo, parseCpuList, parseMeminfo, readNodeInfo } from './node-info.js';

const cpuinfo = ['0', '1', '2', '3']
  .map(
    (n) => `processor\t: ${n}\nmodel name\t: Example CPU @ 2.00GHz\ncpu MHz\t\t: 1999.999\nphysical id\t: ${Number(n) < 2 ? 0 : 1}\ncore id\t\t: ${Number(n) % 2}\n`,
  )
  .join('\n');

describe('node info parsers', () => {
  it('reads sockets, cores and threads from /proc/cpuinfo', () => {
    expect(parseCpuInfo(cpuinfo)).toEqual({ model: 'Example CPU @ 2.00GHz', count: 4, sockets: 2, coresPerSocket: 2, threadsPerCore: 1, mhz: 1999.999 });
  });

  it('expands kernel cpulists', () => {
    expect(parseCpuList('0-3,8,10-11\n')).toEqual([0, 1, 2, 3, 8, 10, 11]);
    expect(parseCpuList('')).toEqual([]);
  });

  it('reads /proc/meminfo and NUMA meminfo in bytes', () => {
    expect(parseMeminfo('MemTotal:       24589412 kB\nMemFree:         1000 kB\nHugePages_Total:       0\n').get('MemTotal')).toBe(24589412 * 1024);
    expect(parseMeminfo('Node 0 MemFree:   2048 kB\n').get('MemFree')).toBe(2048 * 1024);
  });

  it('describes this machine from /proc and /sys', async () => {
    const info = await readNodeInfo('n1', '0.0.0', new Date().toISOString(), []);
    expect(info.cpu.count).toBeGreaterThan(0);
    expect(info.memory.totalBytes).toBeGreaterThan(info.memory.freeBytes);
    expect(info.numa.flatMap((cell) => cell.cpus).length).toBe(info.numa.length ? info.cpu.count : 0);
  });
});

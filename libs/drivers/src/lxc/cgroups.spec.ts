import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cgroupDirectories, detectCgroupVersion, parseCgroupMounts, parseLimit, parseNetDev, parseProcCgroup, parseV1Stats, parseV2Stats, payloadPath } from './cgroups.js';

// Real file formats: v1 taken from a container on a Debian 12 host (cgroup v1), v2 from kernel 6.1 (cgroup2).
const V1_MEMORY_STAT = `cache 4194304
rss 352256
rss_huge 0
shmem 4194304
mapped_file 0
swap 0
hierarchical_memory_limit 33554432
hierarchical_memsw_limit 33554432
total_cache 4194304
total_rss 352256
total_rss_huge 0
total_shmem 4194304
`;

const V1_FILES = {
  'cpuacct.usage': '735311575\n',
  'cpuacct.usage_user': '412000000\n',
  'cpuacct.usage_sys': '323311575\n',
  'cpuacct.stat': 'user 41\nsystem 32\n',
  'memory.usage_in_bytes': '4972544\n',
  'memory.limit_in_bytes': '33554432\n',
  'memory.stat': V1_MEMORY_STAT,
  'memory.failcnt': '290\n',
  'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 1\n',
  'pids.current': '3\n',
  'pids.max': '64\n',
};

const V2_FILES = {
  'cpu.stat': 'usage_usec 735311\nuser_usec 412000\nsystem_usec 323311\nnr_periods 12\nnr_throttled 0\nthrottled_usec 0\n',
  'memory.current': '4972544\n',
  'memory.max': '33554432\n',
  'memory.stat': 'anon 352256\nfile 4194304\nkernel 217088\nshmem 4194304\n',
  'memory.events': 'low 0\nhigh 0\nmax 290\noom 1\noom_kill 1\noom_group_kill 0\n',
  'pids.current': '3\n',
  'pids.max': 'max\n',
};

const MOUNTINFO_V1 = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;

const PROC_CGROUP_V1 = `9:name=systemd:/lxc.payload.c1
8:pids:/lxc.payload.c1
4:memory:/lxc.payload.c1
2:cpuacct:/lxc.payload.c1
1:cpu:/lxc.payload.c1
0::/lxc.payload.c1
`;

describe('cgroup v1 stats', () => {
  it('parses cpuacct, memory and pids files', () => {
    expect(parseV1Stats(V1_FILES)).toEqual({
      cpu: { timeNs: 735311575, userNs: 412000000, systemNs: 323311575 },
      memory: { currentBytes: 4972544, limitBytes: 33554432, rssBytes: 352256, failcnt: 290, oomKills: 1 },
      pids: { current: 3, limit: 64 },
    });
  });

  it('falls back to USER_HZ ticks without usage_user/usage_sys and reads the unlimited sentinel as no limit', () => {
    const { 'cpuacct.usage_user': _user, 'cpuacct.usage_sys': _sys, ...older } = V1_FILES;
    const stats = parseV1Stats({ ...older, 'memory.limit_in_bytes': '9223372036854771712\n', 'pids.max': 'max\n' });
    expect(stats.cpu).toEqual({ timeNs: 735311575, userNs: 410_000_000, systemNs: 320_000_000 });
    expect(stats.memory?.limitBytes).toBeUndefined();
    expect(stats.pids).toEqual({ current: 3 });
  });
});

describe('cgroup v2 stats', () => {
  it('parses cpu.stat, memory and pids files', () => {
    expect(parseV2Stats(V2_FILES)).toEqual({
      cpu: { timeNs: 735311000, userNs: 412000000, systemNs: 323311000 },
      memory: { currentBytes: 4972544, limitBytes: 33554432, rssBytes: 352256, failcnt: 290, oomKills: 1 },
      pids: { current: 3 },
    });
  });

  it('leaves out groups whose files are missing', () => {
    expect(parseV2Stats({ 'cpu.stat': V2_FILES['cpu.stat'] })).toEqual({ cpu: { timeNs: 735311000, userNs: 412000000, systemNs: 323311000 } });
    expect(parseLimit('max\n')).toBeUndefined();
  });
});

describe('cgroup paths', () => {
  it('maps a process to its container cgroup in every hierarchy', () => {
    const dirs = cgroupDirectories(parseCgroupMounts(MOUNTINFO_V1), parseProcCgroup(PROC_CGROUP_V1), 'c1');
    expect(Object.fromEntries(dirs)).toEqual({
      'name=systemd': '/sys/fs/cgroup/systemd/lxc.payload.c1',
      pids: '/sys/fs/cgroup/pids/lxc.payload.c1',
      memory: '/sys/fs/cgroup/memory/lxc.payload.c1',
      cpuacct: '/sys/fs/cgroup/cpuacct/lxc.payload.c1',
      cpu: '/sys/fs/cgroup/cpu/lxc.payload.c1',
      unified: '/sys/fs/cgroup/unified/lxc.payload.c1',
    });
  });

  it('handles combined v1 controllers and a pure v2 host', () => {
    const mounts = parseCgroupMounts('30 23 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n');
    expect(cgroupDirectories(mounts, parseProcCgroup('3:cpu,cpuacct:/lxc.payload.c1\n'), 'c1').get('cpuacct')).toBe('/sys/fs/cgroup/cpu,cpuacct/lxc.payload.c1');
    const v2 = parseCgroupMounts('28 23 0:25 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n');
    expect(cgroupDirectories(v2, parseProcCgroup('0::/lxc.payload.c1/init.scope\n'), 'c1').get('unified')).toBe('/sys/fs/cgroup/lxc.payload.c1');
    expect(payloadPath('/a/lxc.payload.c1/x', 'c1')).toBe('/a/lxc.payload.c1');
  });

  it('detects the version from the root cgroup.controllers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'virtbus-cgroup-'));
    try {
      expect(detectCgroupVersion(dir)).toBe('v1');
      await writeFile(join(dir, 'cgroup.controllers'), '\n');
      expect(detectCgroupVersion(dir)).toBe('v1');
      await writeFile(join(dir, 'cgroup.controllers'), 'cpuset cpu io memory hugetlb pids rdma misc\n');
      expect(detectCgroupVersion(dir)).toBe('v2');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('net/dev', () => {
  it('parses interface counters without loopback', () => {
    const text = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     120       2    0    0    0     0          0         0      120       2    0    0    0     0       0          0
  eth0: 507882399   13466    1    2    0     0          0         0  1207123    8501    3    4    0     0       0          0
`;
    expect(parseNetDev(text)).toEqual([
      { name: 'eth0', rxBytes: 507882399, rxPackets: 13466, rxErrors: 1, rxDrops: 2, txBytes: 1207123, txPackets: 8501, txErrors: 3, txDrops: 4 },
    ]);
  });
});

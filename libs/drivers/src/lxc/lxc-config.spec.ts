import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DomainConfig } from '@virtbus/api-contract';
import { detectInitFlavor, renderLxcConfig, sharesToWeight, vethHostName } from './lxc-config.js';
import { domainStateOf, parseLxcInfo } from './lxc-tools.js';
import { testDomainConfig } from '@virtbus/testing';

const config: DomainConfig = testDomainConfig({
  name: 'box',
  uuid: '6f1c1a2e-9d4b-4c57-8a63-0d7f3f2b9e10',
  driver: 'lxc',
  vcpus: 2,
  memory: 32,
  container: { rootfs: { path: '/srv/rootfs' }, hostname: 'vb-box', env: { A: 'x y' }, pidsLimit: 64, cpuShares: 512 },
});

const base = { config, rootfs: 'dir:/srv/rootfs', containerDir: '/state/uuid', initFlavor: 'busybox' as const, nics: [], memsw: true, commonConf: '' };

describe('renderLxcConfig', () => {
  it('writes v1 limits, busybox signals, no network', () => {
    const text = renderLxcConfig({ ...base, cgroupVersion: 'v1' });
    expect(text).toContain('lxc.uts.name = vb-box\n');
    expect(text).toContain('lxc.rootfs.path = dir:/srv/rootfs\n');
    expect(text).toContain('lxc.console.logfile = /state/uuid/console.log\n');
    expect(text).toContain('lxc.environment = A=x y\n');
    expect(text).toContain('lxc.signal.halt = SIGUSR2\n');
    expect(text).toContain('lxc.cgroup.memory.limit_in_bytes = 33554432\n');
    expect(text).toContain('lxc.cgroup.memory.memsw.limit_in_bytes = 33554432\n');
    expect(text).toContain('lxc.cgroup.cpu.cfs_quota_us = 200000\n');
    expect(text).toContain('lxc.cgroup.pids.max = 64\n');
    expect(text).toContain('lxc.cgroup.cpu.shares = 512\n');
    expect(text).toContain('lxc.net.0.type = empty\n');
    expect(text).not.toContain('cgroup2');
  });

  it('writes v2 limits and veth NICs', () => {
    const text = renderLxcConfig({ ...base, cgroupVersion: 'v2', initFlavor: 'other', nics: [{ bridge: 'vbr0', hostName: vethHostName(config.uuid, 0), mac: '52:54:00:00:00:01' }] });
    expect(text).toContain('lxc.cgroup2.memory.max = 33554432\n');
    expect(text).toContain('lxc.cgroup2.memory.swap.max = 0\n');
    expect(text).toContain('lxc.cgroup2.cpu.max = 200000 100000\n');
    expect(text).toContain('lxc.cgroup2.pids.max = 64\n');
    expect(text).toContain(`lxc.cgroup2.cpu.weight = ${sharesToWeight(512)}\n`);
    expect(text).toContain('lxc.net.0.type = veth\nlxc.net.0.link = vbr0\nlxc.net.0.veth.pair = vbl6f1c1a2e0\n');
    expect(text).toContain('lxc.net.0.hwaddr = 52:54:00:00:00:01\n');
    expect(text).not.toContain('lxc.signal.halt');
    expect(text).not.toContain('lxc.cgroup.');
  });

  it('converts shares to weights like runc', () => {
    expect(sharesToWeight(2)).toBe(1);
    expect(sharesToWeight(1024)).toBe(39);
    expect(sharesToWeight(262_144)).toBe(10_000);
  });
});

describe('detectInitFlavor', () => {
  it('follows links inside the rootfs', async () => {
    const rootfs = await mkdtemp(join(tmpdir(), 'virtbus-rootfs-'));
    try {
      await mkdir(join(rootfs, 'bin'));
      await mkdir(join(rootfs, 'sbin'));
      await writeFile(join(rootfs, 'bin/busybox'), '');
      await writeFile(join(rootfs, 'bin/tini'), '');
      await symlink('/bin/busybox', join(rootfs, 'sbin/init'));
      await symlink('../bin/busybox', join(rootfs, 'bin/sh'));
      expect(await detectInitFlavor(rootfs, '/sbin/init')).toBe('busybox');
      expect(await detectInitFlavor(rootfs, '/bin/sh')).toBe('busybox');
      expect(await detectInitFlavor(rootfs, '/bin/tini')).toBe('other');
      expect(await detectInitFlavor(rootfs, '/missing')).toBe('other');
    } finally {
      await rm(rootfs, { recursive: true, force: true });
    }
  });
});

describe('lxc-info', () => {
  it('parses state and pid', () => {
    expect(parseLxcInfo('State:          RUNNING\nPID:            11356\n')).toEqual({ state: 'RUNNING', pid: 11356 });
    expect(parseLxcInfo('State:          STOPPED\n')).toEqual({ state: 'STOPPED' });
    expect(domainStateOf('FROZEN')).toEqual({ state: 'paused', reason: 'user' });
    expect(domainStateOf('STOPPED').state).toBe('shutoff');
  });
});

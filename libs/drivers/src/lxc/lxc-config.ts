import { existsSync } from 'node:fs';
import { readlink } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import type { DomainConfig } from '@virtbus/api-contract';
import type { CgroupVersion } from './cgroups.js';

export const DEFAULT_INIT = ['/sbin/init'] as const;
export const CPU_PERIOD_US = 100_000;
const MIB = 1024 * 1024;
const COMMON_CONF = '/usr/share/lxc/config/common.conf';

/** How init reacts to signals: busybox powers off on SIGUSR2 and reboots on SIGTERM; others get LXC's defaults (SIGPWR, SIGINT). */
export type InitFlavor = 'busybox' | 'other';

export interface LxcNic {
  bridge: string;
  hostName: string;
  mac?: string;
}

export interface LxcConfigInput {
  config: DomainConfig;
  cgroupVersion: CgroupVersion;
  /** `lxc.rootfs.path`: `dir:<dir>`, `loop:<image>` or a block device. */
  rootfs: string;
  containerDir: string;
  initFlavor: InitFlavor;
  nics: readonly LxcNic[];
  /** Whether the v1 memory controller has memsw files (swap accounting), so swap cannot dodge the limit. */
  memsw: boolean;
  /** Debian's common.conf (capability drops, device allow-list, seccomp); skipped when absent. */
  commonConf?: string | undefined;
}

/** cgroup v1 cpu.shares (2…262144) on the v2 cpu.weight scale (1…10000), the conversion runc and systemd use. */
export function sharesToWeight(shares: number): number {
  return 1 + Math.floor(((shares - 2) * 9999) / 262_142);
}

export function consoleLogPath(containerDir: string): string {
  return join(containerDir, 'console.log');
}

export function lxcLogPath(containerDir: string): string {
  return join(containerDir, 'lxc.log');
}

/** The LXC config file of one container; every value comes from a schema-validated DomainConfig. */
export function renderLxcConfig(input: LxcConfigInput): string {
  const { config, cgroupVersion } = input;
  const container = config.container;
  const lines: string[] = ['# Written by virtbus on every start; edits are overwritten.'];
  const commonConf = input.commonConf === undefined ? (existsSync(COMMON_CONF) ? COMMON_CONF : undefined) : input.commonConf;
  // common.conf brings the mounts (proc, sys, cgroup: mixed); without it, set them here.
  lines.push(commonConf ? `lxc.include = ${commonConf}` : 'lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed');
  lines.push(
    `lxc.uts.name = ${container?.hostname ?? config.name}`,
    `lxc.rootfs.path = ${input.rootfs}`,
    'lxc.autodev = 1',
    // No getty ttys: the console is the only terminal, read from its log and written through lxc-console.
    'lxc.tty.max = 0',
    'lxc.pty.max = 64',
    'lxc.apparmor.profile = unconfined',
    `lxc.console.logfile = ${consoleLogPath(input.containerDir)}`,
    'lxc.console.size = 1048576',
  );
  if (input.initFlavor === 'busybox') lines.push('lxc.signal.halt = SIGUSR2', 'lxc.signal.reboot = SIGTERM');
  for (const [name, value] of Object.entries(container?.env ?? {})) lines.push(`lxc.environment = ${name}=${value}`);

  const memoryBytes = config.memory * MIB;
  const quotaUs = config.vcpus * CPU_PERIOD_US;
  if (cgroupVersion === 'v2') {
    lines.push(`lxc.cgroup2.memory.max = ${memoryBytes}`, 'lxc.cgroup2.memory.swap.max = 0', `lxc.cgroup2.cpu.max = ${quotaUs} ${CPU_PERIOD_US}`);
    if (container?.pidsLimit !== undefined) lines.push(`lxc.cgroup2.pids.max = ${container.pidsLimit}`);
    if (container?.cpuShares !== undefined) lines.push(`lxc.cgroup2.cpu.weight = ${sharesToWeight(container.cpuShares)}`);
  } else {
    lines.push(`lxc.cgroup.memory.limit_in_bytes = ${memoryBytes}`);
    if (input.memsw) lines.push(`lxc.cgroup.memory.memsw.limit_in_bytes = ${memoryBytes}`);
    lines.push(`lxc.cgroup.cpu.cfs_period_us = ${CPU_PERIOD_US}`, `lxc.cgroup.cpu.cfs_quota_us = ${quotaUs}`);
    if (container?.pidsLimit !== undefined) lines.push(`lxc.cgroup.pids.max = ${container.pidsLimit}`);
    if (container?.cpuShares !== undefined) lines.push(`lxc.cgroup.cpu.shares = ${container.cpuShares}`);
  }

  if (input.nics.length === 0) lines.push('lxc.net.0.type = empty');
  input.nics.forEach((nic, index) => {
    lines.push(`lxc.net.${index}.type = veth`, `lxc.net.${index}.link = ${nic.bridge}`, `lxc.net.${index}.veth.pair = ${nic.hostName}`, `lxc.net.${index}.flags = up`);
    if (nic.mac) lines.push(`lxc.net.${index}.hwaddr = ${nic.mac}`);
  });
  return `${lines.join('\n')}\n`;
}

/** Host-side veth name: `vbl` + 8 hex digits of the uuid + the NIC index (at most 15 characters). */
export function vethHostName(uuid: string, index: number): string {
  return `vbl${uuid.replace(/-/g, '').slice(0, 8)}${index}`.slice(0, 15);
}

/** Follows init's symlinks inside the rootfs (absolute targets resolve against the rootfs, not the host). */
export async function detectInitFlavor(rootfs: string, initPath: string): Promise<InitFlavor> {
  let path = initPath;
  for (let hop = 0; hop < 16; hop += 1) {
    if (basename(path) === 'busybox') return 'busybox';
    let target: string;
    try {
      target = await readlink(join(rootfs, path));
    } catch {
      return 'other';
    }
    path = target.startsWith('/') ? target : posix.join(dirname(path), target);
  }
  return 'other';
}

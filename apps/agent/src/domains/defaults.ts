import { createHash, randomUUID } from 'node:crypto';
import type { DomainConfig, DomainDisk, DomainGraphics, DomainNic, DomainPut, DomainsPost } from '@virtbus/api-contract';

/** A stable locally-administered MAC (QEMU's 52:54:00 prefix) derived from the domain uuid and NIC index. */
export function stableMac(uuid: string, index: number): string {
  const digest = createHash('sha256').update(`${uuid}/${index}`).digest();
  return ['52', '54', '00', ...[0, 1, 2].map((i) => digest[i]!.toString(16).padStart(2, '0'))].join(':');
}

export function withDiskDefaults(disk: DomainDisk): DomainDisk {
  const device = disk.device ?? 'disk';
  // A pool volume's format comes from the volume (qemu-img info) at start unless the disk names one.
  const format = disk.format ?? ('pool' in disk.source ? undefined : device === 'cdrom' ? 'raw' : 'qcow2');
  return {
    ...disk,
    device,
    ...(format ? { format } : {}),
    bus: disk.bus ?? (device === 'cdrom' ? 'sata' : 'virtio'),
    readonly: disk.readonly ?? device === 'cdrom',
  };
}

function withNicDefaults(uuid: string, nics: DomainNic[]): DomainNic[] {
  return nics.map((nic, index) => ({ ...nic, model: nic.model ?? 'virtio', mac: nic.mac ?? stableMac(uuid, index) }));
}

/** A stored graphics device says its video card; a password absent from an update keeps the one set (reads never show it), an empty one removes it. */
function withGraphicsDefaults(graphics: DomainGraphics, previous?: DomainGraphics): DomainGraphics {
  const password = graphics.password ?? previous?.password;
  return { type: 'vnc', video: graphics.video ?? 'std', ...(password ? { password } : {}) };
}

/** The config as reads show it: a VNC password only as `passwordSet` (libvirt hides passwd without VIR_DOMAIN_XML_SECURE). */
export function publicConfig(config: DomainConfig): DomainConfig {
  if (config.graphics?.password === undefined) return config;
  const { password: _hidden, ...graphics } = config.graphics;
  return { ...config, graphics: { ...graphics, passwordSet: true } };
}

/** Fills every default so the stored config says exactly what will run. */
export function configFromPost(post: DomainsPost): DomainConfig {
  const uuid = (post.uuid ?? randomUUID()).toLowerCase();
  const config: DomainConfig = {
    name: post.name,
    uuid,
    driver: post.driver,
    vcpus: post.vcpus ?? 1,
    memory: post.memory ?? (post.driver === 'lxc' ? 256 : 128),
    os: post.os ?? {},
    disks: (post.disks ?? []).map(withDiskDefaults),
    nics: withNicDefaults(uuid, post.nics ?? []),
    console: post.console ?? { type: 'serial' },
    autostart: post.autostart ?? false,
  };
  if (post.graphics?.type === 'vnc') config.graphics = withGraphicsDefaults(post.graphics);
  if (post.container) config.container = post.container;
  if (post.cpu) config.cpu = post.cpu;
  if (post.currentMemory !== undefined) config.currentMemory = post.currentMemory;
  if (post.numa) config.numa = post.numa;
  if (post.devices) config.devices = post.devices;
  if (post.memoryBacking) config.memoryBacking = post.memoryBacking;
  if (post.maxMemory) config.maxMemory = post.maxMemory;
  if (post.labels && Object.keys(post.labels).length > 0) config.labels = post.labels;
  return config;
}

export function applyPut(config: DomainConfig, put: DomainPut): DomainConfig {
  const next: DomainConfig = { ...config };
  if (put.vcpus !== undefined) next.vcpus = put.vcpus;
  if (put.memory !== undefined) next.memory = put.memory;
  if (put.os !== undefined) next.os = put.os;
  if (put.disks !== undefined) next.disks = put.disks.map(withDiskDefaults);
  if (put.nics !== undefined) next.nics = withNicDefaults(config.uuid, put.nics);
  if (put.console !== undefined) next.console = put.console;
  if (put.graphics !== undefined) {
    if (put.graphics.type === 'vnc') next.graphics = withGraphicsDefaults(put.graphics, config.graphics);
    else delete next.graphics;
  }
  if (put.autostart !== undefined) next.autostart = put.autostart;
  if (put.container !== undefined) next.container = put.container;
  if (put.cpu !== undefined) next.cpu = put.cpu;
  if (put.currentMemory !== undefined) next.currentMemory = put.currentMemory;
  if (put.numa !== undefined) next.numa = put.numa;
  if (put.devices !== undefined) next.devices = put.devices;
  if (put.memoryBacking !== undefined) next.memoryBacking = put.memoryBacking;
  if (put.maxMemory !== undefined) next.maxMemory = put.maxMemory;
  if (put.labels !== undefined) {
    if (Object.keys(put.labels).length > 0) next.labels = put.labels;
    else delete next.labels;
  }
  return next;
}

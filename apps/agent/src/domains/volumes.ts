import { VirtError, type DomainConfig, type DomainDisk } from '@virtbus/api-contract';

/** A pool volume as a domain uses it: where it lives on the node and what format it holds. */
export interface ResolvedVolume {
  path: string;
  format: 'qcow2' | 'raw';
}

/** Looks up pool volumes for domains (the StorageManager): NO_STORAGE_POOL, NO_STORAGE_VOL, OPERATION_INVALID for an inactive pool. */
export interface VolumeResolver {
  resolveVolume(pool: string, volume: string): Promise<ResolvedVolume>;
}

export interface VolumeRef {
  pool: string;
  volume: string;
}

/** Every pool volume a definition refers to (disks and the container root filesystem). */
export function volumesOf(config: DomainConfig): VolumeRef[] {
  const sources = [...config.disks.map((disk) => disk.source), ...(config.container ? [config.container.rootfs] : [])];
  return sources.flatMap((source) => ('pool' in source ? [{ pool: source.pool, volume: source.volume }] : []));
}

/** A disk with a pool volume replaced by the volume's path and format (the format given on the disk wins). */
export async function resolveDisk(disk: DomainDisk, resolver: VolumeResolver | undefined): Promise<DomainDisk> {
  if (!('pool' in disk.source)) return disk;
  if (!resolver) throw new VirtError('OPERATION_UNSUPPORTED', 'this agent has no storage pools to resolve disk volumes');
  const volume = await resolver.resolveVolume(disk.source.pool, disk.source.volume);
  if (disk.device === 'cdrom' && volume.format !== 'raw') {
    throw new VirtError('OPERATION_INVALID', `volume ${disk.source.volume} of pool ${disk.source.pool} is ${volume.format}: a cdrom needs a raw (ISO) volume`);
  }
  return { ...disk, source: { path: volume.path }, format: disk.format ?? volume.format };
}

/** The config a driver runs: every pool volume resolved to a path, so drivers never see pools. */
export async function resolveConfig(config: DomainConfig, resolver: VolumeResolver | undefined): Promise<DomainConfig> {
  if (volumesOf(config).length === 0) return config;
  const disks = await Promise.all(config.disks.map((disk) => resolveDisk(disk, resolver)));
  const resolved: DomainConfig = { ...config, disks };
  const container = config.container;
  if (container && 'pool' in container.rootfs) {
    if (!resolver) throw new VirtError('OPERATION_UNSUPPORTED', 'this agent has no storage pools to resolve the root filesystem volume');
    const { pool, volume } = container.rootfs;
    const found = await resolver.resolveVolume(pool, volume);
    if (found.format !== 'raw') {
      throw new VirtError('OPERATION_UNSUPPORTED', `volume ${volume} of pool ${pool} is ${found.format}: a container root filesystem must be a raw volume holding a filesystem`);
    }
    resolved.container = { ...container, rootfs: { path: found.path } };
  }
  return resolved;
}

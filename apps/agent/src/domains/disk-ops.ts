import { isActive, VirtError, type DomainConfig, type DomainDisk, type DomainState } from '@virtbus/api-contract';
import { diskTargets } from '@virtbus/drivers';
import { withDiskDefaults } from './defaults.js';

export interface Scope {
  live: boolean;
  config: boolean;
}

/** libvirt's flags: none given means the running domain when active, else the definition; live needs an active domain. */
export function scopeOf(name: string, state: DomainState, flags: { live?: boolean | undefined; config?: boolean | undefined }): Scope {
  const active = isActive(state);
  if (!flags.live && !flags.config) return { live: active, config: !active };
  if (flags.live && !active) throw new VirtError('OPERATION_INVALID', `domain ${name} is ${state}: a live change needs a running domain`);
  return { live: flags.live === true, config: flags.config === true };
}

/** Disks with every target filled in, as the drivers number them at start. */
export function withTargets<T extends Pick<DomainDisk, 'target' | 'bus'>>(disks: readonly T[]): (T & { target: string })[] {
  const targets = diskTargets(disks as readonly DomainDisk[]);
  return disks.map((disk, index) => ({ ...disk, target: targets[index]! }));
}

const PREFIX = { virtio: 'vd', sata: 'sd', ide: 'hd' } as const;

/** The disk with defaults and a target that is free in every list it will join (the next free name on its bus). */
export function diskToAttach(disk: DomainDisk, lists: readonly (readonly Pick<DomainDisk, 'target' | 'bus'>[])[]): DomainDisk & { target: string } {
  const filled = withDiskDefaults(disk);
  const used = new Set(lists.flatMap((list) => withTargets(list).map((other) => other.target)));
  if (filled.target) {
    if (used.has(filled.target)) throw new VirtError('OPERATION_INVALID', `target ${filled.target} is already in use`);
    return { ...filled, target: filled.target };
  }
  const prefix = PREFIX[filled.bus ?? 'virtio'];
  for (let index = 0; index < 26 * 27; index++) {
    const suffix = index < 26 ? String.fromCharCode(97 + index) : String.fromCharCode(96 + Math.floor(index / 26)) + String.fromCharCode(97 + (index % 26));
    if (!used.has(`${prefix}${suffix}`)) return { ...filled, target: `${prefix}${suffix}` };
  }
  throw new VirtError('INVALID_ARG', 'too many disks');
}

/** Index of the disk with `target` in a list numbered like the drivers do, or -1. */
export function findTarget(disks: readonly Pick<DomainDisk, 'target' | 'bus'>[], target: string): number {
  return withTargets(disks).findIndex((disk) => disk.target === target);
}

/** The definition with the disk added (its target stored, so the guest sees the same name at every start). */
export function configWithDisk(config: DomainConfig, disk: DomainDisk & { target: string }): DomainConfig {
  return { ...config, disks: [...withTargets(config.disks), disk] };
}

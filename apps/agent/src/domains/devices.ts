import { DEFAULT_DETACH_TIMEOUT_S, VirtError, type DiskAttach, type DiskDetach, type Domain, type LiveDisk, type MediaChange } from '@virtbus/api-contract';
import type { DiskCapability, HypervisorDriver, PluggedDisk } from '@virtbus/drivers';
import { configWithDisk, diskToAttach, findTarget, scopeOf, withTargets } from './disk-ops.js';
import type { DomainJobs } from './jobs.js';
import type { StoredDomain } from './store.js';
import { resolveDisk, type VolumeResolver } from './volumes.js';

/** The disks a running domain has now (its definition's until a hotplug changed them). */
export function liveDisksOf(stored: StoredDomain): LiveDisk[] {
  return stored.liveDisks ?? withTargets(stored.config.disks);
}

/** Disk hotplug and media changes (libvirt's attach-disk, detach-disk, change-media), live and/or in the definition. */
export class DomainDevices {
  constructor(
    private readonly jobs: DomainJobs,
    private readonly volumes?: VolumeResolver,
  ) {}

  /** Hotplugs a disk (live) and/or adds it to the definition (config), like libvirt's attach-disk. */
  attachDisk(id: string, attach: DiskAttach): Promise<Domain> {
    return this.jobs.inJob(id, async (stored, driver) => {
      const scope = scopeOf(stored.config.name, stored.state, attach);
      const live = liveDisksOf(stored);
      const disk = diskToAttach(attach.disk, [...(scope.live ? [live] : []), ...(scope.config ? [stored.config.disks] : [])]);
      const config = scope.config ? configWithDisk(stored.config, disk) : stored.config;
      if (scope.config) driver.validate(config);
      if (scope.live) {
        const disks = hotplug(driver);
        const plugged = (await resolveDisk(disk, this.volumes)) as PluggedDisk;
        await this.jobs.driverCall(driver, 'attachDisk', stored, () => disks.attachDisk(stored, plugged));
      }
      const domain = await this.jobs.saveDevices(stored.config.uuid, config, scope.live ? [...live, disk] : undefined, scope.config);
      if (scope.live) await this.jobs.domainEvent(stored.config.uuid, 'DEVICE_ADDED', { device: disk.target });
      return domain;
    });
  }

  /** Unplugs a disk (live: waits for the guest to release it) and/or removes it from the definition (config). */
  detachDisk(id: string, target: string, detach: DiskDetach): Promise<Domain> {
    return this.jobs.inJob(id, async (stored, driver) => {
      const scope = scopeOf(stored.config.name, stored.state, detach);
      const live = liveDisksOf(stored);
      if (scope.live && !live.some((disk) => disk.target === target)) throw new VirtError('INVALID_ARG', `running domain ${stored.config.name} has no disk ${target}`);
      if (scope.config && findTarget(stored.config.disks, target) < 0) throw new VirtError('INVALID_ARG', `domain ${stored.config.name} has no disk ${target} in its definition`);
      if (scope.live) {
        const disks = hotplug(driver);
        const timeoutMs = (detach.timeout ?? DEFAULT_DETACH_TIMEOUT_S) * 1000;
        await this.jobs.driverCall(driver, 'detachDisk', stored, () => disks.detachDisk(stored, target, { timeoutMs }));
      }
      const config = scope.config ? { ...stored.config, disks: withTargets(stored.config.disks).filter((disk) => disk.target !== target) } : stored.config;
      const domain = await this.jobs.saveDevices(stored.config.uuid, config, scope.live ? live.filter((disk) => disk.target !== target) : undefined, scope.config);
      if (scope.live) await this.jobs.domainEvent(stored.config.uuid, 'DEVICE_REMOVED', { device: target });
      return domain;
    });
  }

  /** Inserts media into a cdrom drive or ejects it, like libvirt's change-media. */
  changeMedia(id: string, target: string, change: MediaChange): Promise<Domain> {
    return this.jobs.inJob(id, async (stored, driver) => {
      const scope = scopeOf(stored.config.name, stored.state, change);
      const live = liveDisksOf(stored);
      const liveIndex = live.findIndex((disk) => disk.target === target);
      const configDisks = withTargets(stored.config.disks);
      const configIndex = configDisks.findIndex((disk) => disk.target === target);
      const notCdrom = (disk: LiveDisk | undefined) => !disk || disk.device !== 'cdrom';
      if (scope.live && notCdrom(live[liveIndex])) throw new VirtError('INVALID_ARG', `running domain ${stored.config.name} has no cdrom drive ${target}`);
      if (scope.config && notCdrom(configDisks[configIndex])) throw new VirtError('INVALID_ARG', `domain ${stored.config.name} has no cdrom drive ${target} in its definition`);
      if (scope.config && !change.source) throw new VirtError('OPERATION_UNSUPPORTED', 'a definition cannot hold an empty cdrom drive: eject live, or detach the drive');
      let nextLive: LiveDisk[] | undefined;
      if (scope.live) {
        const disks = hotplug(driver);
        const current = live[liveIndex]!;
        const media = change.source ? await resolveDisk({ ...current, source: change.source }, this.volumes) : undefined;
        const path = media && 'path' in media.source ? media.source.path : undefined;
        await this.jobs.driverCall(driver, 'changeMedia', stored, () => disks.changeMedia(stored, target, path ? { path, format: media?.format ?? 'raw' } : undefined));
        const { source: _old, ...empty } = current;
        nextLive = live.map((disk, index) => (index === liveIndex ? (change.source ? { ...empty, source: change.source } : empty) : disk));
      }
      const config = scope.config ? { ...stored.config, disks: configDisks.map((disk, index) => (index === configIndex ? { ...disk, source: change.source! } : disk)) } : stored.config;
      const domain = await this.jobs.saveDevices(stored.config.uuid, config, nextLive, scope.config);
      const before = (scope.live ? live[liveIndex] : configDisks[configIndex])?.source;
      await this.jobs.domainEvent(stored.config.uuid, 'DISK_CHANGE', {
        device: target,
        reason: change.source ? 'MEDIA_CHANGED' : 'MEDIA_EJECTED',
        ...(before ? { oldSource: sourceText(before) } : {}),
        ...(change.source ? { newSource: sourceText(change.source) } : {}),
      });
      return domain;
    });
  }
}

/** A disk source as one string: its path, or pool/volume. */
const sourceText = (source: LiveDisk['source'] & object): string => ('path' in source ? source.path : `${source.pool}/${source.volume}`);

function hotplug(driver: HypervisorDriver): DiskCapability {
  if (!driver.disks) throw new VirtError('OPERATION_UNSUPPORTED', `the ${driver.name} driver cannot change disks of a running domain`);
  return driver.disks;
}

import { VirtError } from '@virtbus/api-contract';
import type { DiskCapability, DomainRecord, Media, PluggedDisk, WaitOptions } from '../driver.js';
import { QmpCommandError, type QmpEvent, type QmpMonitor } from './qmp/monitor.js';

/** Node names and device id of a disk, the same for boot-time disks (command-line.ts) and hotplugged ones. */
function names(target: string) {
  return { file: `file-${target}`, format: `fmt-${target}`, device: target };
}

function failure(error: unknown, what: string): VirtError {
  if (error instanceof VirtError) return error;
  if (error instanceof QmpCommandError) {
    const code = error.errorClass === 'DeviceNotFound' ? 'INVALID_ARG' : 'OPERATION_FAILED';
    return new VirtError(code, `${what}: ${error.desc}`, { cause: error });
  }
  return new VirtError('OPERATION_FAILED', `${what}: ${(error as Error)?.message ?? String(error)}`, { cause: error });
}

/** Resolves with the first event named `name` whose data matches, or rejects with OPERATION_TIMEOUT. */
function nextEvent(monitor: QmpMonitor, name: string, matches: (data: Record<string, unknown>) => boolean, timeoutMs: number) {
  let listener: ((event: QmpEvent) => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<QmpEvent>((resolve, reject) => {
    listener = (event) => {
      if (event.event === name && matches(event.data)) resolve(event);
    };
    monitor.on('event', listener);
    timer = setTimeout(() => reject(new VirtError('OPERATION_TIMEOUT', `no ${name} event within ${timeoutMs} ms`)), timeoutMs);
  });
  const stop = () => {
    clearTimeout(timer);
    if (listener) monitor.off('event', listener);
  };
  promise.then(stop, stop);
  return { promise, stop };
}

/** Hotplug over QMP: blockdev-add + device_add virtio-blk-pci; device_del, DEVICE_DELETED, blockdev-del; cdrom media. */
export class QemuDiskHotplug implements DiskCapability {
  constructor(private readonly monitorOf: (domain: DomainRecord) => QmpMonitor) {}

  async attachDisk(domain: DomainRecord, disk: PluggedDisk): Promise<void> {
    if ((disk.bus ?? 'virtio') !== 'virtio' || disk.device === 'cdrom') {
      throw new VirtError('OPERATION_UNSUPPORTED', 'only virtio disks can be hotplugged (cdroms: change their media instead)');
    }
    const monitor = this.monitorOf(domain);
    const node = names(disk.target);
    const readOnly = disk.readonly === true;
    const what = `attach of ${disk.target} to ${domain.config.name}`;
    const added: string[] = [];
    try {
      await monitor.execute('blockdev-add', { driver: 'file', 'node-name': node.file, filename: disk.source.path, 'read-only': readOnly });
      added.push(node.file);
      await monitor.execute('blockdev-add', { driver: disk.format ?? 'qcow2', 'node-name': node.format, file: node.file, 'read-only': readOnly });
      added.push(node.format);
      await monitor.execute('device_add', { driver: 'virtio-blk-pci', id: node.device, drive: node.format });
    } catch (error) {
      for (const name of added.reverse()) await monitor.execute('blockdev-del', { 'node-name': name }).catch(() => undefined);
      throw failure(error, what);
    }
  }

  async detachDisk(domain: DomainRecord, target: string, options: WaitOptions): Promise<void> {
    const monitor = this.monitorOf(domain);
    const node = names(target);
    const what = `detach of ${target} from ${domain.config.name}`;
    const deleted = nextEvent(monitor, 'DEVICE_DELETED', (data) => data.device === node.device, options.timeoutMs);
    deleted.promise.catch(() => undefined);
    try {
      await monitor.execute('device_del', { id: node.device });
    } catch (error) {
      deleted.stop();
      throw failure(error, what);
    }
    const releaseNodes = async () => {
      for (const name of [node.format, node.file]) await monitor.execute('blockdev-del', { 'node-name': name }).catch(() => undefined);
    };
    try {
      await deleted.promise;
    } catch (error) {
      // The guest may still let go later: free the block nodes then, so the target can be reused.
      const late = nextEvent(monitor, 'DEVICE_DELETED', (data) => data.device === node.device, 3_600_000);
      late.promise.then(releaseNodes, () => undefined);
      throw new VirtError('OPERATION_TIMEOUT', `${what}: the guest did not release the disk within ${options.timeoutMs} ms`, { cause: error });
    }
    await releaseNodes();
  }

  async changeMedia(domain: DomainRecord, target: string, media: Media | undefined): Promise<void> {
    const monitor = this.monitorOf(domain);
    try {
      if (media) {
        await monitor.execute('blockdev-change-medium', { id: target, filename: media.path, format: media.format, 'read-only-mode': 'read-only', force: true });
      } else {
        await monitor.execute('eject', { id: target, force: true });
      }
    } catch (error) {
      throw failure(error, `${media ? 'media change' : 'eject'} of ${target} in ${domain.config.name}`);
    }
  }
}

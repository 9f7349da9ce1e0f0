import { VirtError } from '@virtbus/api-contract';
import type { DiskCapability, DomainRecord, Media, PluggedDisk, WaitOptions } from '../driver.js';
import { QmpCommandError, type Qmp } from './qmp/index.js';

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

/** Hotplug over QMP: blockdev-add + device_add virtio-blk-pci; device_del, DEVICE_DELETED, blockdev-del; cdrom media. */
export class QemuDiskHotplug implements DiskCapability {
  constructor(private readonly qmpOf: (domain: DomainRecord) => Qmp) {}

  async attachDisk(domain: DomainRecord, disk: PluggedDisk): Promise<void> {
    if ((disk.bus ?? 'virtio') !== 'virtio' || disk.device === 'cdrom') {
      throw new VirtError('OPERATION_UNSUPPORTED', 'only virtio disks can be hotplugged (cdroms: change their media instead)');
    }
    const qmp = this.qmpOf(domain);
    const node = names(disk.target);
    const readOnly = disk.readonly === true;
    const what = `attach of ${disk.target} to ${domain.config.name}`;
    const added: string[] = [];
    try {
      await qmp.block.blockdevAdd({ driver: 'file', 'node-name': node.file, filename: disk.source.path, 'read-only': readOnly });
      added.push(node.file);
      await qmp.block.blockdevAdd({ driver: disk.format ?? 'qcow2', 'node-name': node.format, file: node.file, 'read-only': readOnly });
      added.push(node.format);
      await qmp.misc.deviceAdd({ driver: 'virtio-blk-pci', id: node.device, drive: node.format });
    } catch (error) {
      for (const name of added.reverse()) await qmp.block.blockdevDel(name).catch(() => undefined);
      throw failure(error, what);
    }
  }

  async detachDisk(domain: DomainRecord, target: string, options: WaitOptions): Promise<void> {
    const qmp = this.qmpOf(domain);
    const node = names(target);
    const what = `detach of ${target} from ${domain.config.name}`;
    const deviceDeleted = (timeoutMs: number) =>
      qmp.nextEvent('DEVICE_DELETED', (data) => data.device === node.device, timeoutMs, () => new VirtError('OPERATION_TIMEOUT', `no DEVICE_DELETED event within ${timeoutMs} ms`));
    const deleted = deviceDeleted(options.timeoutMs);
    deleted.promise.catch(() => undefined);
    try {
      await qmp.misc.deviceDel(node.device);
    } catch (error) {
      deleted.stop();
      throw failure(error, what);
    }
    const releaseNodes = async () => {
      for (const name of [node.format, node.file]) await qmp.block.blockdevDel(name).catch(() => undefined);
    };
    try {
      await deleted.promise;
    } catch (error) {
      // The guest may still let go later: free the block nodes then, so the target can be reused.
      const late = deviceDeleted(3_600_000);
      late.promise.then(releaseNodes, () => undefined);
      throw new VirtError('OPERATION_TIMEOUT', `${what}: the guest did not release the disk within ${options.timeoutMs} ms`, { cause: error });
    }
    await releaseNodes();
  }

  async changeMedia(domain: DomainRecord, target: string, media: Media | undefined): Promise<void> {
    const qmp = this.qmpOf(domain);
    try {
      if (media) {
        await qmp.block.blockdevChangeMedium({ id: target, filename: media.path, format: media.format, 'read-only-mode': 'read-only', force: true });
      } else {
        await qmp.block.eject({ id: target, force: true });
      }
    } catch (error) {
      throw failure(error, `${media ? 'media change' : 'eject'} of ${target} in ${domain.config.name}`);
    }
  }
}

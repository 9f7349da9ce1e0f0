import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { VirtError } from '@virtbus/api-contract';
import type { CreateVolumeSpec, PoolBackend, PoolDefinition, PoolUsage, ProgressFn, ReadSource, VolumeDetails, WriteTarget } from './backend.js';
import { volumePathIn } from './paths.js';
import { qemuImgConvert } from './qemu-img.js';
import { runTool } from './run.js';
import { writeZeros } from './zero.js';

/** Without a udev daemon LVM must create device nodes itself instead of waiting for udev. */
const NO_UDEV_CONFIG = 'activation { udev_sync = 0 udev_rules = 0 } devices { obtain_device_list_from_udev = 0 }';

function lvm(command: string, args: readonly string[]): Promise<string> {
  const config = existsSync('/run/udev/control') ? [] : ['--config', NO_UDEV_CONFIG];
  return runTool('lvm', [command, ...config, ...args], { env: { ...process.env, LVM_SUPPRESS_FD_WARNINGS: '1' } });
}

function report<T>(json: string, key: 'vg' | 'lv'): T[] {
  const parsed = JSON.parse(json) as { report?: Record<string, T[]>[] };
  return parsed.report?.[0]?.[key] ?? [];
}

interface LvRow {
  lv_name: string;
  lv_size: string;
  lv_path: string;
}

/** An LVM volume group; volumes are raw logical volumes (libvirt's `logical` pool). */
export class LogicalPoolBackend implements PoolBackend {
  readonly type = 'logical' as const;

  private vg(pool: PoolDefinition): string {
    return pool.vgName ?? pool.name;
  }

  async exists(pool: PoolDefinition): Promise<boolean> {
    return lvm('vgs', ['--reportformat', 'json', '-o', 'vg_name', this.vg(pool)]).then(
      () => true,
      () => false,
    );
  }

  async build(pool: PoolDefinition): Promise<void> {
    if (pool.sourceDevices.length === 0) throw new VirtError('INVALID_ARG', `logical pool ${pool.name} has no source devices to build on`);
    await lvm('pvcreate', ['-y', ...pool.sourceDevices]);
    await lvm('vgcreate', [this.vg(pool), ...pool.sourceDevices]);
  }

  async start(pool: PoolDefinition): Promise<void> {
    await lvm('vgchange', ['-ay', this.vg(pool)]);
  }

  async stop(pool: PoolDefinition): Promise<void> {
    await lvm('vgchange', ['-an', this.vg(pool)]);
  }

  async delete(pool: PoolDefinition): Promise<void> {
    await lvm('vgremove', ['-f', this.vg(pool)]);
    if (pool.sourceDevices.length > 0) await lvm('pvremove', [...pool.sourceDevices]);
  }

  async usage(pool: PoolDefinition): Promise<PoolUsage> {
    const [row] = report<{ vg_size: string; vg_free: string }>(
      await lvm('vgs', ['--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', 'vg_size,vg_free', this.vg(pool)]),
      'vg',
    );
    if (!row) throw new VirtError('OPERATION_FAILED', `volume group ${this.vg(pool)} not found`);
    const capacityBytes = Number(row.vg_size);
    const availableBytes = Number(row.vg_free);
    return { capacityBytes, allocationBytes: capacityBytes - availableBytes, availableBytes };
  }

  async listVolumes(pool: PoolDefinition): Promise<VolumeDetails[]> {
    const rows = report<LvRow>(await lvm('lvs', ['--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', 'lv_name,lv_size,lv_path', this.vg(pool)]), 'lv');
    return rows.map((row) => this.details(pool, row)).sort((a, b) => a.name.localeCompare(b.name));
  }

  async volume(pool: PoolDefinition, name: string): Promise<VolumeDetails> {
    volumePathIn(pool.target, name);
    const found = (await this.listVolumes(pool)).find((volume) => volume.name === name);
    if (!found) throw new VirtError('NO_STORAGE_VOL', `no volume ${name} in pool ${pool.name}`);
    return found;
  }

  async createVolume(pool: PoolDefinition, spec: CreateVolumeSpec): Promise<VolumeDetails> {
    volumePathIn(pool.target, spec.name);
    if (spec.format !== 'raw') throw new VirtError('INVALID_ARG', 'logical pools hold raw volumes only');
    if (spec.backing !== undefined) throw new VirtError('OPERATION_UNSUPPORTED', 'backing volumes are not supported in logical pools');
    if ((await this.listVolumes(pool)).some((volume) => volume.name === spec.name)) {
      throw new VirtError('STORAGE_VOL_EXISTS', `volume ${spec.name} already exists in pool ${pool.name}`);
    }
    await lvm('lvcreate', ['-y', '-Wy', '-n', spec.name, '-L', `${spec.capacityBytes}b`, this.vg(pool)]);
    return this.volume(pool, spec.name);
  }

  async deleteVolume(pool: PoolDefinition, name: string): Promise<void> {
    await this.volume(pool, name);
    await lvm('lvremove', ['-f', `${this.vg(pool)}/${name}`]);
  }

  async resizeVolume(pool: PoolDefinition, name: string, capacityBytes: number, allowShrink: boolean): Promise<VolumeDetails> {
    const current = await this.volume(pool, name);
    if (capacityBytes < current.capacityBytes && !allowShrink) {
      throw new VirtError('OPERATION_INVALID', `shrinking ${name} from ${current.capacityBytes} to ${capacityBytes} bytes loses data; set allowShrink`);
    }
    if (capacityBytes !== current.capacityBytes) await lvm('lvresize', ['-f', '-L', `${capacityBytes}b`, `${this.vg(pool)}/${name}`]);
    return this.volume(pool, name);
  }

  async cloneVolume(pool: PoolDefinition, source: string, target: string, progress: ProgressFn, signal: AbortSignal): Promise<VolumeDetails> {
    const from = await this.volume(pool, source);
    const to = await this.createVolume(pool, { name: target, format: 'raw', capacityBytes: from.capacityBytes });
    try {
      await qemuImgConvert(
        { path: from.path, format: 'raw' },
        { path: to.path, format: 'raw', existing: true },
        (percent) => progress(Math.round((percent / 100) * from.capacityBytes), from.capacityBytes),
        { signal },
      );
    } catch (error) {
      await lvm('lvremove', ['-f', `${this.vg(pool)}/${target}`]).catch(() => undefined);
      throw error;
    }
    return this.volume(pool, target);
  }

  async wipeVolume(pool: PoolDefinition, name: string, progress: ProgressFn, signal: AbortSignal): Promise<void> {
    const volume = await this.volume(pool, name);
    const handle = await open(volume.path, 'r+');
    try {
      await writeZeros(handle, volume.capacityBytes, progress, signal);
    } finally {
      await handle.close();
    }
  }

  async openRead(pool: PoolDefinition, name: string): Promise<ReadSource> {
    const volume = await this.volume(pool, name);
    return { handle: await open(volume.path, 'r'), sizeBytes: volume.capacityBytes };
  }

  async openWrite(pool: PoolDefinition, name: string, existing?: VolumeDetails): Promise<WriteTarget> {
    // a logical volume is written in place and never resized; it must exist
    const volume = existing ?? (await this.volume(pool, name));
    const handle = await open(volume.path, 'r+');
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      await handle.close();
    };
    return {
      handle,
      maxBytes: volume.capacityBytes,
      async commit() {
        await handle.sync();
        await close();
      },
      // A block device cannot be rolled back: the bytes written so far stay.
      abort: () => close().catch(() => undefined),
    };
  }

  private details(pool: PoolDefinition, row: LvRow): VolumeDetails {
    const size = Number(row.lv_size);
    const path = row.lv_path || `/dev/${this.vg(pool)}/${row.lv_name}`;
    return { name: row.lv_name, path, format: 'raw', capacityBytes: size, allocationBytes: size, backingChain: [] };
  }
}

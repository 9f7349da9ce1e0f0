import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, rmdir, stat, statfs, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { VirtError, isObjectName } from '@virtbus/api-contract';
import type { CreateVolumeSpec, PoolBackend, PoolDefinition, PoolUsage, ProgressFn, ReadSource, VolumeDetails, WriteTarget } from './backend.js';
import { assertRealPathInside, volumePathIn } from './paths.js';
import { qemuImgConvert, qemuImgInfo } from './qemu-img.js';
import { runTool } from './run.js';

const isMissing = (error: unknown) => (error as NodeJS.ErrnoException).code === 'ENOENT';

/** A directory of image files, handled with qemu-img (libvirt's `dir` pool). */
export class DirPoolBackend implements PoolBackend {
  readonly type = 'dir' as const;

  async exists(pool: PoolDefinition): Promise<boolean> {
    return stat(pool.target).then(
      (info) => info.isDirectory(),
      () => false,
    );
  }

  async build(pool: PoolDefinition): Promise<void> {
    await mkdir(pool.target, { recursive: true, mode: 0o711 });
  }

  async start(pool: PoolDefinition): Promise<void> {
    if (!(await this.exists(pool))) throw new VirtError('OPERATION_INVALID', `pool directory ${pool.target} does not exist; build the pool first`);
  }

  async stop(): Promise<void> {}

  async delete(pool: PoolDefinition): Promise<void> {
    try {
      await rmdir(pool.target);
    } catch (error) {
      if (isMissing(error)) return;
      throw new VirtError('OPERATION_INVALID', `cannot delete pool directory ${pool.target}: ${(error as Error).message}`, { cause: error });
    }
  }

  async usage(pool: PoolDefinition): Promise<PoolUsage> {
    const fs = await statfs(pool.target);
    const capacityBytes = fs.blocks * fs.bsize;
    return { capacityBytes, allocationBytes: (fs.blocks - fs.bfree) * fs.bsize, availableBytes: fs.bavail * fs.bsize };
  }

  async listVolumes(pool: PoolDefinition): Promise<VolumeDetails[]> {
    const names = (await readdir(pool.target, { withFileTypes: true })).filter((entry) => entry.isFile() && isObjectName(entry.name)).map((entry) => entry.name);
    const volumes = await Promise.all(names.sort().map((name) => this.volume(pool, name).catch(() => undefined)));
    return volumes.filter((volume): volume is VolumeDetails => volume !== undefined);
  }

  async volume(pool: PoolDefinition, name: string): Promise<VolumeDetails> {
    const path = await this.existingPath(pool, name);
    const info = await qemuImgInfo(path);
    return {
      name,
      path,
      format: info.format === 'qcow2' ? 'qcow2' : 'raw',
      capacityBytes: info.virtualSize,
      allocationBytes: info.actualSize,
      backingChain: info.backingChain,
    };
  }

  async createVolume(pool: PoolDefinition, spec: CreateVolumeSpec): Promise<VolumeDetails> {
    const path = await this.freePath(pool, spec.name);
    const args = ['create', '-q', '-f', spec.format];
    if (spec.backing !== undefined) {
      if (spec.format !== 'qcow2') throw new VirtError('INVALID_ARG', 'only a qcow2 volume can have a backing volume');
      const backing = await this.volume(pool, spec.backing);
      args.push('-b', backing.path, '-F', backing.format);
    }
    args.push(path);
    if (spec.capacityBytes > 0 || spec.backing === undefined) args.push(String(spec.capacityBytes));
    await runTool('qemu-img', args);
    return this.volume(pool, spec.name);
  }

  async deleteVolume(pool: PoolDefinition, name: string): Promise<void> {
    await rm(await this.existingPath(pool, name));
  }

  async resizeVolume(pool: PoolDefinition, name: string, capacityBytes: number, allowShrink: boolean): Promise<VolumeDetails> {
    const current = await this.volume(pool, name);
    const shrinking = capacityBytes < current.capacityBytes;
    if (shrinking && !allowShrink) {
      throw new VirtError('OPERATION_INVALID', `shrinking ${name} from ${current.capacityBytes} to ${capacityBytes} bytes loses data; set allowShrink`);
    }
    await runTool('qemu-img', ['resize', '-q', '-f', current.format, ...(shrinking ? ['--shrink'] : []), current.path, String(capacityBytes)]);
    return this.volume(pool, name);
  }

  async cloneVolume(pool: PoolDefinition, source: string, target: string, progress: ProgressFn, signal: AbortSignal): Promise<VolumeDetails> {
    const from = await this.volume(pool, source);
    const path = await this.freePath(pool, target);
    try {
      await qemuImgConvert(from, { path, format: from.format }, (percent) => progress(Math.round((percent / 100) * from.capacityBytes), from.capacityBytes), {
        signal,
      });
    } catch (error) {
      await rm(path, { force: true });
      throw error;
    }
    progress(from.capacityBytes, from.capacityBytes);
    return this.volume(pool, target);
  }

  async wipeVolume(pool: PoolDefinition, name: string, progress: ProgressFn): Promise<void> {
    const volume = await this.volume(pool, name);
    if (volume.format === 'raw') {
      // Dropping every block then restoring the size leaves a sparse file that reads as zeros.
      await truncate(volume.path, 0);
      await truncate(volume.path, volume.capacityBytes);
    } else {
      const backing = volume.backingChain[0];
      const args = ['create', '-q', '-f', 'qcow2', ...(backing ? ['-b', backing.path, '-F', backing.format] : []), volume.path, String(volume.capacityBytes)];
      await runTool('qemu-img', args);
    }
    progress(volume.capacityBytes, volume.capacityBytes);
  }

  async openRead(pool: PoolDefinition, name: string): Promise<ReadSource> {
    const path = await this.existingPath(pool, name);
    const handle = await open(path, 'r');
    return { handle, sizeBytes: (await handle.stat()).size };
  }

  async openWrite(pool: PoolDefinition, name: string, existing?: VolumeDetails): Promise<WriteTarget> {
    const path = volumePathIn(pool.target, name);
    const temp = join(pool.target, `.${name}.upload-${randomBytes(6).toString('hex')}`);
    const handle = await open(temp, 'wx', 0o600);
    let done = false;
    const raw = existing?.format === 'raw';
    return {
      handle,
      // a raw volume takes at most its capacity; a qcow2 file's length is not its capacity (checked at commit)
      ...(raw ? { maxBytes: existing.capacityBytes } : {}),
      async commit(sizeBytes: number) {
        done = true;
        try {
          // an existing raw volume keeps its size: the upload is its first bytes, the rest a hole that reads as zeros
          await handle.truncate(raw ? Math.max(sizeBytes, existing.capacityBytes) : sizeBytes);
          await handle.sync();
          await handle.close();
          if (existing && !raw) {
            const info = await qemuImgInfo(temp);
            const format = info.format === 'qcow2' ? 'qcow2' : 'raw';
            if (format !== existing.format || info.virtualSize !== existing.capacityBytes) {
              throw new VirtError(
                'INVALID_ARG',
                `the upload is a ${format} image of ${info.virtualSize} bytes; volume ${name} is ${existing.format} of ${existing.capacityBytes} bytes and an upload does not change that (resize it first, or upload to a new volume with create)`,
              );
            }
          }
          await rename(temp, path);
        } catch (error) {
          await handle.close().catch(() => undefined);
          await rm(temp, { force: true });
          throw error;
        }
      },
      async abort() {
        if (done) return;
        done = true;
        await handle.close().catch(() => undefined);
        await rm(temp, { force: true });
      },
    };
  }

  private async existingPath(pool: PoolDefinition, name: string): Promise<string> {
    const path = volumePathIn(pool.target, name);
    try {
      const info = await stat(path);
      if (!info.isFile()) throw new VirtError('NO_STORAGE_VOL', `no volume ${name} in pool ${pool.name}`);
    } catch (error) {
      if (isMissing(error)) throw new VirtError('NO_STORAGE_VOL', `no volume ${name} in pool ${pool.name}`, { cause: error });
      throw error;
    }
    await assertRealPathInside(pool.target, path);
    return path;
  }

  private async freePath(pool: PoolDefinition, name: string): Promise<string> {
    const path = volumePathIn(pool.target, name);
    const taken = await stat(path).then(
      () => true,
      (error: unknown) => !isMissing(error),
    );
    if (taken) throw new VirtError('STORAGE_VOL_EXISTS', `volume ${name} already exists in pool ${pool.name}`);
    return path;
  }
}

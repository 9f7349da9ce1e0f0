import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  VirtError,
  parseSize,
  type AsyncOperation,
  type PoolEventType,
  type PoolType,
  type StoragePool,
  type StoragePoolPut,
  type StoragePoolsPost,
  type StoragePoolStatePut,
  type StorageVolume,
  type StorageVolumesPost,
  type StreamSession,
} from '@virtbus/api-contract';
import { createPoolBackends, type PoolBackend, type VolumeDetails } from '@virtbus/drivers';
import type { Logger } from 'pino';
import { JobLocks } from '../domains/job-lock.js';
import type { EventPublisher } from '../events/publisher.js';
import { OperationManager } from './operations.js';
import { PoolStore, type StoredPool } from './pool-store.js';
import { ContentStreams } from './streams.js';
import { StateDir } from '../state-dir.js';

export const DEFAULT_POOL = 'default';

export interface StorageManagerOptions {
  node: string;
  stateDir: string;
  nc: NatsConnection;
  events: EventPublisher;
  logger: Logger;
  backends?: Record<PoolType, PoolBackend>;
  /** Names of the domains that use a volume; such a volume cannot be deleted. */
  volumeUsers?: (pool: string, volume: string) => string[];
}

/** Owns the node's storage pools: definitions on disk, one job at a time per pool or volume, lifecycle events. */
export class StorageManager {
  readonly operations: OperationManager;
  private readonly pools = new Map<string, StoredPool>();
  private readonly building = new Set<string>();
  private readonly locks = new JobLocks();
  private readonly store: PoolStore;
  private readonly backends: Record<PoolType, PoolBackend>;
  private readonly streams: ContentStreams;

  constructor(private readonly options: StorageManagerOptions) {
    this.store = new PoolStore(options.stateDir, options.logger);
    this.backends = options.backends ?? createPoolBackends();
    this.operations = new OperationManager(options.nc, options.node, options.logger);
    this.streams = new ContentStreams(options.nc, options.node, this.operations, options.logger);
  }

  async init(): Promise<void> {
    for (const pool of await this.store.loadAll()) this.pools.set(pool.name, pool);
    if ((await this.store.markInitialized()) && !this.pools.has(DEFAULT_POOL)) {
      await this.define({ name: DEFAULT_POOL, type: 'dir', autostart: true });
      await this.changeState(DEFAULT_POOL, { action: 'build' });
    }
    for (const pool of this.pools.values()) {
      if (pool.active) {
        // Still active from before the agent restarted: check the backend agrees, and publish nothing new.
        await this.backends[pool.type].start(pool).catch(async (error: unknown) => {
          this.options.logger.error({ err: error, pool: pool.name }, 'active pool is no longer usable');
          pool.active = false;
          await this.store.save(pool);
          await this.emit(pool, 'STOPPED');
        });
      } else if (pool.autostart) {
        await this.changeState(pool.name, { action: 'start' }).catch((error: unknown) =>
          this.options.logger.error({ err: error, pool: pool.name }, 'pool autostart failed'),
        );
      }
    }
  }

  async close(): Promise<void> {
    this.operations.close();
    await this.streams.closeAll();
  }

  async list(): Promise<StoragePool[]> {
    const names = [...this.pools.keys()].sort();
    return Promise.all(names.map((name) => this.view(this.pool(name))));
  }

  async get(name: string): Promise<StoragePool> {
    return this.view(this.pool(name));
  }

  async define(post: StoragePoolsPost): Promise<StoragePool> {
    return this.locks.run(`pool:${post.name}`, async () => {
      if (this.pools.has(post.name)) throw new VirtError('STORAGE_POOL_EXISTS', `storage pool ${post.name} already exists`);
      const sourceDevices = post.sourceDevices ?? [];
      let target: string;
      if (post.type === 'dir') {
        if (sourceDevices.length > 0 || post.vgName) throw new VirtError('INVALID_ARG', 'dir pools take a target directory, not source devices');
        target = post.target ?? StateDir.poolTarget(this.options.stateDir, post.name);
      } else {
        if (post.target) throw new VirtError('INVALID_ARG', 'logical pools live in /dev/<vgName>; give vgName, not target');
        target = `/dev/${post.vgName ?? post.name}`;
      }
      for (const other of this.pools.values()) {
        if (other.target === target) throw new VirtError('STORAGE_POOL_EXISTS', `pool ${other.name} already uses ${target}`);
      }
      const pool: StoredPool = {
        uuid: randomUUID(),
        name: post.name,
        type: post.type,
        target,
        ...(post.type === 'logical' ? { vgName: post.vgName ?? post.name } : {}),
        sourceDevices,
        autostart: post.autostart ?? false,
        active: false,
      };
      await this.store.save(pool);
      this.pools.set(pool.name, pool);
      await this.emit(pool, 'DEFINED');
      return this.view(pool);
    });
  }

  async update(name: string, put: StoragePoolPut): Promise<StoragePool> {
    return this.locks.run(`pool:${name}`, async () => {
      const pool = this.pool(name);
      if (put.autostart !== undefined) pool.autostart = put.autostart;
      await this.store.save(pool);
      return this.view(pool);
    });
  }

  async undefine(name: string): Promise<StoragePool> {
    return this.locks.run(`pool:${name}`, async () => {
      const pool = this.pool(name);
      if (pool.active) throw new VirtError('OPERATION_INVALID', `storage pool ${name} is active; stop it first`);
      const view = await this.view(pool);
      await this.store.remove(name);
      this.pools.delete(name);
      await this.emit(pool, 'UNDEFINED');
      return view;
    });
  }

  async changeState(name: string, change: StoragePoolStatePut): Promise<StoragePool> {
    return this.locks.run(`pool:${name}`, async () => {
      const pool = this.pool(name);
      const backend = this.backends[pool.type];
      const mustBe = (active: boolean) => {
        if (pool.active !== active) throw new VirtError('OPERATION_INVALID', `storage pool ${name} is ${pool.active ? 'active' : 'inactive'}`);
      };
      switch (change.action) {
        case 'build':
          mustBe(false);
          this.building.add(name);
          try {
            await backend.build(pool);
          } finally {
            this.building.delete(name);
          }
          await this.emit(pool, 'CREATED');
          break;
        case 'start':
        case 'stop': {
          const starting = change.action === 'start';
          mustBe(!starting);
          if (!starting) this.assertIdle(name);
          await (starting ? backend.start(pool) : backend.stop(pool));
          pool.active = starting;
          await this.store.save(pool);
          await this.emit(pool, starting ? 'STARTED' : 'STOPPED');
          break;
        }
        case 'refresh':
          mustBe(true);
          break;
        case 'delete':
          mustBe(false);
          await backend.delete(pool);
          await this.emit(pool, 'DELETED');
          break;
      }
      return this.view(pool);
    });
  }

  async listVolumes(poolName: string): Promise<StorageVolume[]> {
    const { pool, backend } = this.running(poolName);
    return (await backend.listVolumes(pool)).map((volume) => this.volumeView(poolName, volume));
  }

  async getVolume(poolName: string, name: string): Promise<StorageVolume> {
    const { pool, backend } = this.running(poolName);
    return this.volumeView(poolName, await backend.volume(pool, name));
  }

  /** Path and format of a volume for a domain (VolumeResolver): the pool must exist and be active. */
  async resolveVolume(poolName: string, name: string): Promise<{ path: string; format: 'qcow2' | 'raw' }> {
    const { pool, backend } = this.running(poolName);
    const volume = await backend.volume(pool, name);
    return { path: volume.path, format: volume.format };
  }

  async createVolume(poolName: string, post: StorageVolumesPost): Promise<StorageVolume> {
    const { pool, backend } = this.running(poolName);
    const capacityBytes = parseSize(post.capacity);
    const format = post.format ?? (pool.type === 'dir' ? 'qcow2' : 'raw');
    return this.locks.run(`vol:${poolName}/${post.name}`, async () =>
      this.volumeView(
        poolName,
        await backend.createVolume(pool, { name: post.name, format, capacityBytes, ...(post.backing ? { backing: post.backing.volume } : {}) }),
      ),
    );
  }

  /** Creates a raw volume holding `bytes` (a small generated image such as a cloud-init seed). */
  async writeVolume(poolName: string, name: string, bytes: Buffer): Promise<StorageVolume> {
    const { pool, backend } = this.running(poolName);
    return this.locks.run(`vol:${poolName}/${name}`, async () => {
      if ((await backend.listVolumes(pool)).some((volume) => volume.name === name)) {
        throw new VirtError('STORAGE_VOL_EXISTS', `volume ${name} already exists in pool ${poolName}`);
      }
      const target = await backend.openWrite(pool, name);
      try {
        await target.handle.write(bytes, 0, bytes.length, 0);
        await target.commit(bytes.length);
      } catch (error) {
        await target.abort();
        throw error;
      }
      return this.volumeView(poolName, await backend.volume(pool, name));
    });
  }

  async deleteVolume(poolName: string, name: string): Promise<StorageVolume> {
    const { pool, backend } = this.running(poolName);
    return this.locks.run(`vol:${poolName}/${name}`, async () => {
      const volume = await backend.volume(pool, name);
      const users = this.options.volumeUsers?.(poolName, name) ?? [];
      if (users.length > 0) throw new VirtError('OPERATION_INVALID', `volume ${name} of pool ${poolName} is used by domain ${users.join(', ')}`);
      await backend.deleteVolume(pool, name);
      return this.volumeView(poolName, volume);
    });
  }

  async resizeVolume(poolName: string, name: string, capacity: string | number, allowShrink: boolean): Promise<StorageVolume> {
    const { pool, backend } = this.running(poolName);
    const bytes = parseSize(capacity);
    return this.locks.run(`vol:${poolName}/${name}`, async () => this.volumeView(poolName, await backend.resizeVolume(pool, name, bytes, allowShrink)));
  }

  async cloneVolume(poolName: string, name: string, target: string): Promise<AsyncOperation> {
    const { pool, backend } = this.running(poolName);
    const source = await backend.volume(pool, name);
    if ((await backend.listVolumes(pool)).some((volume) => volume.name === target)) {
      throw new VirtError('STORAGE_VOL_EXISTS', `volume ${target} already exists in pool ${poolName}`);
    }
    return this.operations.run(`Clone volume ${name} of pool ${poolName} to ${target}`, { pool: poolName, volume: target }, source.capacityBytes, (op) =>
      this.locks.run(`vol:${poolName}/${target}`, async () => {
        await backend.cloneVolume(pool, name, target, op.progress, op.signal);
      }),
    );
  }

  async wipeVolume(poolName: string, name: string): Promise<AsyncOperation> {
    const { pool, backend } = this.running(poolName);
    const volume = await backend.volume(pool, name);
    return this.operations.run(`Wipe volume ${name} of pool ${poolName}`, { pool: poolName, volume: name }, volume.capacityBytes, (op) =>
      this.locks.run(`vol:${poolName}/${name}`, () => backend.wipeVolume(pool, name, op.progress, op.signal)),
    );
  }

  async upload(poolName: string, name: string, sizeBytes?: number, create = false): Promise<StreamSession> {
    const { pool, backend } = this.running(poolName);
    const existing = await backend.volume(pool, name).catch((error: unknown) => {
      if (VirtError.is(error, 'NO_STORAGE_VOL')) return undefined;
      throw error;
    });
    if (!existing && !create) throw new VirtError('NO_STORAGE_VOL', `no volume ${name} in pool ${poolName}: create it first, or upload with create (CLI: --create)`);
    const target = await backend.openWrite(pool, name, existing);
    if (sizeBytes !== undefined && target.maxBytes !== undefined && sizeBytes > target.maxBytes) {
      await target.abort();
      throw new VirtError('INVALID_ARG', `${sizeBytes} bytes do not fit volume ${name} of ${target.maxBytes} bytes`);
    }
    return this.streams.upload(poolName, name, target, sizeBytes);
  }

  async download(poolName: string, name: string): Promise<StreamSession> {
    const { pool, backend } = this.running(poolName);
    return this.streams.download(poolName, name, await backend.openRead(pool, name));
  }

  private pool(name: string): StoredPool {
    const pool = this.pools.get(name);
    if (!pool) throw new VirtError('NO_STORAGE_POOL', `no storage pool ${name}`);
    return pool;
  }

  private running(name: string): { pool: StoredPool; backend: PoolBackend } {
    const pool = this.pool(name);
    if (!pool.active) throw new VirtError('OPERATION_INVALID', `storage pool ${name} is not active`);
    return { pool, backend: this.backends[pool.type] };
  }

  private assertIdle(name: string): void {
    const busy = this.operations.list().some((op) => op.status === 'running' && op.resources.pool === name);
    if (busy) throw new VirtError('OPERATION_INVALID', `storage pool ${name} has running operations`);
  }

  private async view(pool: StoredPool): Promise<StoragePool> {
    const backend = this.backends[pool.type];
    let state: StoragePool['state'] = this.building.has(pool.name) ? 'building' : pool.active ? 'running' : 'inactive';
    let usage = { capacityBytes: 0, allocationBytes: 0, availableBytes: 0 };
    if (state === 'running') {
      try {
        usage = await backend.usage(pool);
      } catch (error) {
        this.options.logger.warn({ err: error, pool: pool.name }, 'pool storage is not reachable');
        state = 'inaccessible';
      }
    }
    return {
      name: pool.name,
      uuid: pool.uuid,
      type: pool.type,
      state,
      autostart: pool.autostart,
      target: pool.target,
      ...(pool.vgName ? { vgName: pool.vgName } : {}),
      sourceDevices: [...pool.sourceDevices],
      ...usage,
    };
  }

  private volumeView(pool: string, volume: VolumeDetails): StorageVolume {
    return { pool, ...volume };
  }

  private async emit(pool: StoredPool, type: PoolEventType): Promise<void> {
    const state = this.building.has(pool.name) ? 'building' : pool.active ? 'running' : 'inactive';
    await this.options.events.emitPool(pool, type, state);
  }
}

import { stat } from 'node:fs/promises';
import {
  isActive,
  VirtError,
  type Domain,
  type DomainRestorePost,
  type DomainSaveTarget,
  type DomainSnapshot,
  type DomainSnapshotDelete,
  type DomainSnapshotList,
  type DomainSnapshotsPost,
  type DomainsPost,
  type ManagedSaveInfo,
} from '@virtbus/api-contract';
import { readSaveHeader, volumePathIn, type DomainRecord, type HypervisorDriver, type RunState, type SaveRestoreCapability, type SnapshotCapability } from '@virtbus/drivers';
import type { Logger } from 'pino';
import type { DomainManager } from '../domains/manager.js';
import type { ManagedSaveImages } from '../domains/managed-save.js';
import type { EventPublisher } from '../events/publisher.js';
import type { StorageManager } from '../storage/manager.js';
import { SnapshotStore } from './store.js';
import { added, defaultName, descendants, find, removed, treeOrder, viewOf, withDisks } from './tree.js';

export interface SnapshotServiceOptions {
  stateDir: string;
  manager: DomainManager;
  storage: StorageManager;
  events: EventPublisher;
  logger: Logger;
}

function snapshotsOf(driver: HypervisorDriver): SnapshotCapability {
  if (!driver.snapshots) throw new VirtError('OPERATION_UNSUPPORTED', `the ${driver.name} driver has no snapshots`);
  return driver.snapshots;
}

function saveRestoreOf(driver: HypervisorDriver): SaveRestoreCapability {
  if (!driver.saveRestore) throw new VirtError('OPERATION_UNSUPPORTED', `the ${driver.name} driver cannot save and restore domains`);
  return driver.saveRestore;
}

/**
 * Snapshots and save/restore of the node's domains: the metadata tree is the agent's (one file per domain), the
 * drivers change images and processes, and every call runs under the domain's job lock.
 */
export class SnapshotService {
  private readonly store: SnapshotStore;

  constructor(private readonly options: SnapshotServiceOptions) {
    this.store = new SnapshotStore(options.stateDir);
  }

  /** The manager's managed save images: a plain start resumes from one (DomainManager's start). */
  private get images(): ManagedSaveImages {
    return this.options.manager.managedSaves;
  }

  async init(): Promise<void> {
    await this.store.init();
    await this.images.init();
  }

  async list(id: string): Promise<DomainSnapshotList> {
    const uuid = this.options.manager.get(id).uuid;
    const set = await this.store.load(uuid);
    return { snapshots: treeOrder(set), ...(set.current !== undefined ? { current: set.current } : {}) };
  }

  async get(id: string, name: string): Promise<DomainSnapshot> {
    return viewOf(await this.store.load(this.options.manager.get(id).uuid), name);
  }

  async create(id: string, post: DomainSnapshotsPost): Promise<DomainSnapshot> {
    return this.options.manager.job(id, 'snapshot-create', async (stored, driver) => {
      const uuid = stored.config.uuid;
      const set = await this.store.load(uuid);
      const name = post.name ?? defaultName();
      if (set.snapshots.some((snapshot) => snapshot.name === name)) throw new VirtError('OPERATION_INVALID', `snapshot ${name} already exists`);
      const kind = post.kind ?? 'internal';
      const take = () => snapshotsOf(driver).createSnapshot(stored, { name, kind }, { all: treeOrder(set) });
      const taken = post.quiesce ? await quiesced(stored, driver, take) : await take();
      const next = added(set, {
        name,
        domain: uuid,
        kind,
        ...(post.description !== undefined ? { description: post.description } : {}),
        state: taken.state,
        memory: taken.memory,
        createdAt: new Date().toISOString(),
        disks: taken.disks,
      });
      await this.store.save(uuid, next);
      await this.options.events.emitSnapshot({ uuid, name: stored.config.name }, name, 'CREATED');
      return { result: viewOf(next, name), ...(taken.config ? { config: taken.config } : {}) };
    });
  }

  async revert(id: string, name: string): Promise<Domain> {
    const uuid = await this.options.manager.job(id, 'snapshot-revert', async (stored, driver) => {
      const uuid = stored.config.uuid;
      const set = await this.store.load(uuid);
      const snapshot = viewOf(set, name);
      const reverted = await snapshotsOf(driver).revertSnapshot(stored, snapshot, { all: treeOrder(set) });
      await this.store.save(uuid, withDisks({ ...set, current: name }, reverted.updated));
      // the saved memory belongs to a state that no longer exists
      await this.images.remove(uuid);
      await this.options.events.emitSnapshot({ uuid, name: stored.config.name }, name, 'REVERTED');
      return { result: uuid, ...(reverted.config ? { config: reverted.config } : {}), states: [...(reverted.through ?? []), reverted.run] };
    });
    return this.options.manager.get(uuid);
  }

  async delete(id: string, name: string, options: DomainSnapshotDelete = {}): Promise<{ deleted: string[] }> {
    return this.options.manager.job(id, 'snapshot-delete', async (stored, driver) => {
      const uuid = stored.config.uuid;
      let set = await this.store.load(uuid);
      find(set, name);
      const mode = options.mode ?? 'single';
      const below = descendants(set, name);
      const doomed = mode === 'single' ? [name] : mode === 'children' ? [...below, name] : below;
      let config = stored.config;
      const capability = options.metadataOnly ? undefined : snapshotsOf(driver);
      const deleted: string[] = [];
      for (const victim of doomed) {
        if (capability) {
          const record: DomainRecord = { ...stored, config };
          const outcome = await capability.deleteSnapshot(record, viewOf(set, victim), { all: treeOrder(set) });
          if (outcome.config) config = outcome.config;
          set = withDisks(set, outcome.updated);
        }
        set = removed(set, victim);
        await this.store.save(uuid, set);
        deleted.push(victim);
        await this.options.events.emitSnapshot({ uuid, name: stored.config.name }, victim, 'DELETED');
      }
      return { result: { deleted }, ...(config !== stored.config ? { config } : {}) };
    });
  }

  async save(id: string, target: DomainSaveTarget): Promise<Domain> {
    const path = await this.poolFile(target.pool, target.volume);
    const uuid = await this.options.manager.job(id, 'save', async (stored, driver) => {
      if (await exists(path)) throw new VirtError('OPERATION_INVALID', `${target.pool}/${target.volume} already exists`);
      const run = await saveRestoreOf(driver).save(stored, path);
      return { result: stored.config.uuid, states: [run] };
    });
    return this.options.manager.get(uuid);
  }

  async restore(post: DomainRestorePost): Promise<Domain> {
    const path = await this.poolFile(post.pool, post.volume);
    const { header } = await readSaveHeader(path);
    // like libvirt, a save file brings its domain along: one undefined meanwhile is defined again from it
    const known = this.options.manager.list().some((domain) => domain.uuid === header.config.uuid);
    if (!known) await this.options.manager.define(header.config as DomainsPost);
    const uuid = await this.options.manager.job(header.config.uuid, 'restore', async (stored, driver) => {
      if (isActive(stored.state)) throw new VirtError('OPERATION_INVALID', `domain ${stored.config.name} is already ${stored.state}`);
      const run = await saveRestoreOf(driver).restore(stored, path, { paused: post.paused ?? false });
      return { result: stored.config.uuid, states: [run] };
    });
    return this.options.manager.get(uuid);
  }

  async managedSave(id: string): Promise<Domain> {
    const uuid = await this.options.manager.job(id, 'managed-save', async (stored, driver) => {
      await this.images.remove(stored.config.uuid);
      const run = await saveRestoreOf(driver).save(stored, this.images.path(stored.config.uuid));
      return { result: stored.config.uuid, states: [run] };
    });
    return this.options.manager.get(uuid);
  }

  async managedSaveInfo(id: string): Promise<ManagedSaveInfo> {
    return this.images.info(this.options.manager.get(id).uuid);
  }

  async managedSaveRemove(id: string): Promise<ManagedSaveInfo> {
    return this.options.manager.job(id, 'managed-save-remove', async (stored) => {
      if (!(await this.images.exists(stored.config.uuid))) throw new VirtError('OPERATION_INVALID', `domain ${stored.config.name} has no managed save image`);
      await this.images.remove(stored.config.uuid);
      // a shut-off domain no longer counts as saved once its image is gone
      const states: RunState[] = stored.state === 'shutoff' && stored.reason === 'saved' ? [{ state: 'shutoff', reason: 'unknown' }] : [];
      return { result: { domain: stored.config.uuid, present: false }, states };
    });
  }

  /** Metadata of a domain being undefined goes with it. */
  async forget(uuid: string): Promise<void> {
    await this.store.remove(uuid);
    await this.images.remove(uuid);
  }

  private async poolFile(poolName: string, volume: string): Promise<string> {
    const pool = await this.options.storage.get(poolName);
    if (pool.type !== 'dir') throw new VirtError('OPERATION_UNSUPPORTED', `save files live in dir pools; ${poolName} is ${pool.type}`);
    if (pool.state !== 'running') throw new VirtError('OPERATION_INVALID', `storage pool ${poolName} is not running`);
    return volumePathIn(pool.target, volume);
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Runs `take` with the guest's file systems frozen by its guest agent, thawing them whatever happens. */
async function quiesced<T>(stored: DomainRecord, driver: HypervisorDriver, take: () => Promise<T>): Promise<T> {
  const agent = driver.guestAgent;
  if (!agent) throw new VirtError('OPERATION_UNSUPPORTED', `the ${driver.name} driver has no guest agent to quiesce the guest`);
  if (stored.state !== 'running') throw new VirtError('OPERATION_INVALID', `domain ${stored.config.name} is ${stored.state}: quiescing needs it running`);
  await agent.fsFreeze(stored);
  try {
    return await take();
  } finally {
    await agent.fsThaw(stored);
  }
}

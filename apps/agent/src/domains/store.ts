import { readFileSync } from 'node:fs';
import { mkdir, open, readdir, rm } from 'node:fs/promises';
import { setImmediate } from 'node:timers/promises';
import { join } from 'node:path';
import { compileValidator, DomainConfig, DomainState, LiveDisk, StateReason, isUuid } from '@virtbus/api-contract';
import { writeAndRename, type DomainRuntime } from '@virtbus/drivers';
import Type, { type Static } from 'typebox';
import type { Logger } from 'pino';
import { StateDir } from '../state-dir.js';
import { GroupSync } from './group-sync.js';

/** What the agent keeps on disk per domain: the definition, the last known state and the driver's runtime facts. */
export const StoredDomain = Type.Object({
  config: DomainConfig,
  state: DomainState,
  reason: StateReason,
  stateChangedAt: Type.String(),
  /** virsh's domain id: given at each start from the agent's counter, kept while the domain runs (restarts included). */
  id: Type.Optional(Type.Integer({ minimum: 1 })),
  runtime: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  /** Disks of the running domain (boot disks plus hotplugged ones); absent when shut off. */
  liveDisks: Type.Optional(Type.Array(LiveDisk)),
});
export type StoredDomain = Static<typeof StoredDomain> & { runtime?: DomainRuntime };

const validStoredDomain = compileValidator(StoredDomain);
const LOAD_BATCH = 256;
const SYNC_PARALLEL = 32;

export class DomainStore {
  private readonly dir: string;
  private created: Promise<unknown> | undefined;
  private tempSeq = 0;
  // Renames that land while the directory is being synced share the next sync: parallel defines do not queue one each.
  private readonly dirSync: GroupSync;
  /** Writes without a sync in progress, and files written so (their definitions are in the event log until synced). */
  private readonly unsyncedWrites = new Map<string, Promise<unknown>>();
  private readonly unsynced = new Set<string>();

  constructor(
    stateDir: string,
    private readonly logger: Logger,
  ) {
    this.dir = StateDir.domains(stateDir);
    this.dirSync = new GroupSync(async () => {
      const handle = await open(this.dir, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    });
  }

  /**
   * Reads every domain file, nothing is written. Synchronous reads in batches (one file is a few hundred bytes: four
   * thread-pool round trips of an async read cost more than the read), yielding to the event loop between batches.
   */
  async loadAll(definitions: ReadonlyMap<string, unknown> = new Map()): Promise<StoredDomain[]> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const files = (await readdir(this.dir)).filter((file) => file.endsWith('.json') && isUuid(file.slice(0, -5)));
    const loaded: StoredDomain[] = [];
    for (let start = 0; start < files.length; start += LOAD_BATCH) {
      for (const file of files.slice(start, start + LOAD_BATCH)) {
        const path = join(this.dir, file);
        try {
          const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
          loaded.push(validStoredDomain.parse(parsed) as StoredDomain);
        } catch (error) {
          // A damaged file is kept for a person to inspect, never silently deleted.
          this.logger.error({ err: error, path }, 'ignoring unreadable domain definition');
        }
      }
      await setImmediate();
    }
    // A domain defined just before a crash: its file (written without a sync) is missing or damaged, its event log record is not.
    const found = new Set(loaded.map((stored) => stored.config.uuid));
    for (const [uuid, definition] of definitions) {
      if (found.has(uuid)) continue;
      let stored: StoredDomain;
      try {
        stored = validStoredDomain.parse(definition) as StoredDomain;
      } catch (error) {
        this.logger.error({ err: error, uuid }, 'ignoring an unreadable definition in the event log');
        continue;
      }
      this.logger.warn({ domain: stored.config.name, uuid }, 'domain file rebuilt from its definition in the event log');
      await this.save(stored);
      loaded.push(stored);
    }
    return loaded;
  }

  /**
   * Writes a new domain's file without waiting for the disk: the caller records the definition durably in the event
   * log at the same time, and syncUnsynced makes the file durable before that record may go.
   */
  saveUnsynced(domain: StoredDomain): Promise<void> {
    const uuid = domain.config.uuid;
    const write = this.write(domain, false).then(() => {
      this.unsynced.add(uuid);
    });
    const settled: Promise<unknown> = write
      .catch(() => undefined)
      .then(() => {
        if (this.unsyncedWrites.get(uuid) === settled) this.unsyncedWrites.delete(uuid);
      });
    this.unsyncedWrites.set(uuid, settled);
    return write;
  }

  /** Makes every file saveUnsynced wrote (or is writing) so far durable: its data, then the directory. */
  async syncUnsynced(): Promise<void> {
    await Promise.all(this.unsyncedWrites.values());
    const uuids = [...this.unsynced];
    if (uuids.length === 0) return;
    for (let start = 0; start < uuids.length; start += SYNC_PARALLEL) {
      await Promise.all(
        uuids.slice(start, start + SYNC_PARALLEL).map(async (uuid) => {
          const handle = await open(join(this.dir, `${uuid}.json`), 'r').catch((error: NodeJS.ErrnoException) => {
            // undefined since: nothing to keep
            if (error.code === 'ENOENT') return undefined;
            throw error;
          });
          if (!handle) return;
          try {
            await handle.datasync();
          } finally {
            await handle.close();
          }
        }),
      );
    }
    await this.dirSync.run();
    for (const uuid of uuids) this.unsynced.delete(uuid);
  }

  /** Atomic and durable like writeJsonAtomic (temp file, fdatasync, rename, directory fsync), without a mkdir per write. */
  async save(domain: StoredDomain): Promise<void> {
    await this.write(domain, true);
  }

  private async write(domain: StoredDomain, durable: boolean): Promise<void> {
    await (this.created ??= mkdir(this.dir, { recursive: true, mode: 0o700 }));
    const path = join(this.dir, `${domain.config.uuid}.json`);
    // the name removeStaleTemps knows (ATOMIC_TEMP_NAME): `.<file>.<12 hex>.tmp`
    const temp = join(this.dir, `.${domain.config.uuid}.json.${(this.tempSeq++).toString(16).padStart(12, '0')}.tmp`);
    await writeAndRename(temp, path, `${JSON.stringify(domain, null, 2)}\n`, durable ? 'data' : 'none');
    if (durable) await this.dirSync.run();
  }

  async remove(uuid: string): Promise<void> {
    await rm(join(this.dir, `${uuid}.json`), { force: true });
  }
}

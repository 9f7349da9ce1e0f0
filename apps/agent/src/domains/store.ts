import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import { setImmediate } from 'node:timers/promises';
import { join } from 'node:path';
import { compileValidator, DomainConfig, DomainState, DomainTaint, LiveDisk, StateReason, isUuid } from '@virtbus/api-contract';
import { writeAndRename, writeFileAtomic, type DomainRuntime } from '@virtbus/drivers';
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
  /** Taint flags of the running domain (hypervisor-specific calls); absent when shut off. */
  tainted: Type.Optional(Type.Array(DomainTaint)),
  /** Made by domain.create: removed when it shuts off (libvirt's transient domain). */
  transient: Type.Optional(Type.Literal(true)),
});
export type StoredDomain = Static<typeof StoredDomain> & { runtime?: DomainRuntime };

const validStoredDomain = compileValidator(StoredDomain);
const LOAD_BATCH = 256;
const SYNC_PARALLEL = 32;
const SNAPSHOT_FILE = 'domains.json';
// Records in a snapshot of the same schema were validated on their way into memory; another schema's are checked one by one.
const SCHEMA_ID = createHash('sha256').update(JSON.stringify(StoredDomain)).digest('hex').slice(0, 16);

/** The clean-stop snapshot: every record, the event log seq it is current with, and the domain directory's mtime then. */
interface CleanSnapshot {
  version: 1;
  schema: string;
  logSeq: number;
  dirMtimeNs: string;
  domains: StoredDomain[];
}

/** What loadAll checks the clean-stop snapshot against, and what rebuilds lost files when it falls back to the files. */
export interface LoadSources {
  /** Definitions in event log records after the log's own snapshot (EventLog.takeDefinitions). */
  definitions?: ReadonlyMap<string, unknown>;
  /** The event log's highest seq: the snapshot is only current when it was written at exactly this seq. */
  logSeq?: number;
  /** Domains as the event log's records left them: the snapshot must hold exactly these, in these states. */
  recorded?: ReadonlyMap<string, { state: string }>;
}

export class DomainStore {
  private readonly dir: string;
  private created: Promise<unknown> | undefined;
  private tempSeq = 0;
  // Renames that land while the directory is being synced share the next sync: parallel defines do not queue one each.
  private readonly dirSync: GroupSync;
  /** Writes without a sync in progress, and files written so (their definitions are in the event log until synced). */
  private readonly unsyncedWrites = new Map<string, Promise<unknown>>();
  private readonly unsynced = new Set<string>();
  private readonly snapshotDir: string;
  /** The clean-stop snapshot's removal, done once before this run's first domain write (a write makes it stale). */
  private snapshotDropped: Promise<void> | undefined;
  /** Whether the last loadAll came from the clean-stop snapshot. */
  loadedFromSnapshot = false;

  constructor(
    stateDir: string,
    private readonly logger: Logger,
  ) {
    this.dir = StateDir.domains(stateDir);
    this.snapshotDir = StateDir.cleanStop(stateDir);
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
   * Every record from the clean-stop snapshot in one read when it is provably current, else from the domain files.
   * Reads every domain file, nothing is written. Synchronous reads in batches (one file is a few hundred bytes: four
   * thread-pool round trips of an async read cost more than the read), yielding to the event loop between batches.
   */
  async loadAll(sources: LoadSources = {}): Promise<StoredDomain[]> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const snapshot = await this.currentSnapshot(sources);
    this.loadedFromSnapshot = snapshot !== undefined;
    if (snapshot) {
      this.logger.info({ domains: snapshot.length }, 'domains loaded from the clean-stop snapshot');
      return snapshot;
    }
    const definitions = sources.definitions ?? new Map<string, unknown>();
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
   * The clean-stop snapshot's records when it is current: written at the event log's present seq (no record since), the
   * domain directory unchanged since (mtime), the same domains in the same states as the log records. Anything else, or
   * an unreadable file, means the files are read. A write of this run removes it first (dropSnapshot).
   */
  private async currentSnapshot(sources: LoadSources): Promise<StoredDomain[] | undefined> {
    let text: string;
    try {
      // one synchronous read: an async one of a few MiB is many thread-pool round trips, and nothing else runs yet
      text = readFileSync(join(this.snapshotDir, SNAPSHOT_FILE), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.logger.warn({ err: error }, 'clean-stop snapshot unreadable; reading the domain files');
      return undefined;
    }
    let snapshot: CleanSnapshot;
    try {
      snapshot = JSON.parse(text) as CleanSnapshot;
    } catch (error) {
      this.logger.warn({ err: error }, 'clean-stop snapshot damaged; reading the domain files');
      return undefined;
    }
    const stale = (why: string) => {
      this.logger.info({ why }, 'clean-stop snapshot is stale; reading the domain files');
      return undefined;
    };
    if (snapshot.version !== 1 || !Array.isArray(snapshot.domains)) return stale('unknown format');
    if (sources.logSeq === undefined || snapshot.logSeq !== sources.logSeq) return stale(`written at event seq ${snapshot.logSeq}, the log is at ${sources.logSeq}`);
    const mtime = (await stat(this.dir, { bigint: true })).mtimeNs.toString();
    if (mtime !== snapshot.dirMtimeNs) return stale('the domain directory changed since');
    const { recorded, definitions } = sources;
    if (recorded && recorded.size !== snapshot.domains.length) return stale(`${snapshot.domains.length} domains, the log records ${recorded.size}`);
    const uuids = new Set<string>();
    const checked = snapshot.schema !== SCHEMA_ID;
    for (const stored of snapshot.domains) {
      if (checked && !validStoredDomain.check(stored)) return stale(`an invalid record`);
      uuids.add(stored.config.uuid);
      if (recorded && recorded.get(stored.config.uuid)?.state !== stored.state) return stale(`domain ${stored.config.name} differs from its log record`);
    }
    if (uuids.size !== snapshot.domains.length) return stale('a uuid twice');
    for (const uuid of definitions?.keys() ?? []) if (!uuids.has(uuid)) return stale(`domain ${uuid} defined in the log is missing`);
    return snapshot.domains;
  }

  /**
   * At a clean stop, after the last domain write: every record in one file (atomic, synced) with the event log's seq,
   * so the next start reads one file instead of one per domain. The next domain write of any run removes it first.
   */
  async writeSnapshot(domains: Iterable<StoredDomain>, logSeq: number): Promise<void> {
    await Promise.all(this.unsyncedWrites.values());
    const dirMtimeNs = (await stat(this.dir, { bigint: true })).mtimeNs.toString();
    const snapshot: CleanSnapshot = { version: 1, schema: SCHEMA_ID, logSeq, dirMtimeNs, domains: [...domains] };
    await writeFileAtomic(join(this.snapshotDir, SNAPSHOT_FILE), JSON.stringify(snapshot));
    // a write after this one (none is expected after a stop) makes it stale again
    this.snapshotDropped = undefined;
  }

  /** Removes the clean-stop snapshot, durably, before the first domain write of this run; a failure fails that write. */
  private dropSnapshot(): Promise<void> {
    this.snapshotDropped ??= (async () => {
      try {
        await rm(join(this.snapshotDir, SNAPSHOT_FILE));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw error;
      }
      const handle = await open(this.snapshotDir, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    })().catch((error: unknown) => {
      this.snapshotDropped = undefined;
      throw error;
    });
    return this.snapshotDropped;
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
    await this.dropSnapshot();
    await (this.created ??= mkdir(this.dir, { recursive: true, mode: 0o700 }));
    const path = join(this.dir, `${domain.config.uuid}.json`);
    // the name removeStaleTemps knows (ATOMIC_TEMP_NAME): `.<file>.<12 hex>.tmp`
    const temp = join(this.dir, `.${domain.config.uuid}.json.${(this.tempSeq++).toString(16).padStart(12, '0')}.tmp`);
    await writeAndRename(temp, path, `${JSON.stringify(domain, null, 2)}\n`, durable ? 'data' : 'none');
    if (durable) await this.dirSync.run();
  }

  async remove(uuid: string): Promise<void> {
    await this.dropSnapshot();
    await rm(join(this.dir, `${uuid}.json`), { force: true });
  }
}

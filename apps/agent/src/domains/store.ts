import { readFileSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { setImmediate } from 'node:timers/promises';
import { join } from 'node:path';
import { compileValidator, DomainConfig, DomainState, LiveDisk, StateReason, isUuid } from '@virtbus/api-contract';
import type { DomainRuntime } from '@virtbus/drivers';
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
  runtime: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  /** Disks of the running domain (boot disks plus hotplugged ones); absent when shut off. */
  liveDisks: Type.Optional(Type.Array(LiveDisk)),
});
export type StoredDomain = Static<typeof StoredDomain> & { runtime?: DomainRuntime };

const validStoredDomain = compileValidator(StoredDomain);
const LOAD_BATCH = 256;

export class DomainStore {
  private readonly dir: string;
  private created: Promise<unknown> | undefined;
  private tempSeq = 0;
  // Renames that land while the directory is being synced share the next sync: parallel defines do not queue one each.
  private readonly dirSync: GroupSync;

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
  async loadAll(): Promise<StoredDomain[]> {
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
    return loaded;
  }

  /** Atomic and durable like writeJsonAtomic (temp file, fdatasync, rename, directory fsync), without a mkdir per write. */
  async save(domain: StoredDomain): Promise<void> {
    await (this.created ??= mkdir(this.dir, { recursive: true, mode: 0o700 }));
    const path = join(this.dir, `${domain.config.uuid}.json`);
    // the name removeStaleTemps knows (ATOMIC_TEMP_NAME): `.<file>.<12 hex>.tmp`
    const temp = join(this.dir, `.${domain.config.uuid}.json.${(this.tempSeq++).toString(16).padStart(12, '0')}.tmp`);
    const handle = await open(temp, 'w', 0o600);
    try {
      await handle.writeFile(`${JSON.stringify(domain, null, 2)}\n`);
      await handle.datasync();
    } catch (error) {
      await handle.close();
      await rm(temp, { force: true });
      throw error;
    }
    await handle.close();
    try {
      await rename(temp, path);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    await this.dirSync.run();
  }

  async remove(uuid: string): Promise<void> {
    await rm(join(this.dir, `${uuid}.json`), { force: true });
  }
}

import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { compileValidator, isObjectName, ObjectName, PoolType, Uuid } from '@virtbus/api-contract';
import { writeJsonAtomic } from '@virtbus/drivers';
import Type, { type Static } from 'typebox';
import type { Logger } from 'pino';
import { StateDir } from '../state-dir.js';

/** A pool as the agent keeps it on disk: its definition and whether it was started. */
export const StoredPool = Type.Object({
  uuid: Uuid,
  name: ObjectName,
  type: PoolType,
  target: Type.String(),
  vgName: Type.Optional(Type.String()),
  sourceDevices: Type.Array(Type.String()),
  autostart: Type.Boolean(),
  active: Type.Boolean(),
});
export type StoredPool = Static<typeof StoredPool>;

const validStoredPool = compileValidator(StoredPool);

export class PoolStore {
  readonly dir: string;

  constructor(
    stateDir: string,
    private readonly logger: Logger,
  ) {
    this.dir = StateDir.storagePools(stateDir);
  }

  async loadAll(): Promise<StoredPool[]> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const pools: StoredPool[] = [];
    for (const file of await readdir(this.dir)) {
      if (!file.endsWith('.json') || !isObjectName(file.slice(0, -5))) continue;
      const path = join(this.dir, file);
      try {
        pools.push(validStoredPool.parse(JSON.parse(await readFile(path, 'utf8'))));
      } catch (error) {
        // A damaged file is kept for a person to inspect, never silently deleted.
        this.logger.error({ err: error, path }, 'ignoring unreadable pool definition');
      }
    }
    return pools;
  }

  async save(pool: StoredPool): Promise<void> {
    await writeJsonAtomic(join(this.dir, `${pool.name}.json`), pool);
  }

  async remove(name: string): Promise<void> {
    await rm(join(this.dir, `${name}.json`), { force: true });
  }

  /** The default pool is created once, on a new node; undefining it later is respected. */
  async markInitialized(): Promise<boolean> {
    const marker = join(this.dir, '.default-created');
    try {
      await readFile(marker);
      return false;
    } catch {
      await writeJsonAtomic(marker, { at: new Date().toISOString() });
      return true;
    }
  }
}

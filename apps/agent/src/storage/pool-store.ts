import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { compileValidator, PoolType } from '@virtbus/api-contract';
import { writeJsonAtomic } from '@virtbus/drivers';
import Type, { type Static } from 'typebox';
import type { Logger } from 'pino';
import { JsonDirStore, StoredIdentityFields } from '../json-dir-store.js';
import { StateDir } from '../state-dir.js';

/** A pool as the agent keeps it on disk: its definition and whether it was started. */
export const StoredPool = Type.Object({
  ...StoredIdentityFields,
  type: PoolType,
  target: Type.String(),
  vgName: Type.Optional(Type.String()),
  sourceDevices: Type.Array(Type.String()),
  autostart: Type.Boolean(),
  active: Type.Boolean(),
});
export type StoredPool = Static<typeof StoredPool>;

const validStoredPool = compileValidator(StoredPool);

export class PoolStore extends JsonDirStore<StoredPool> {
  constructor(stateDir: string, logger: Logger) {
    super(StateDir.storagePools(stateDir), (value) => validStoredPool.parse(value), 'pool definition', logger);
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

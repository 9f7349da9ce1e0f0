import { readFile } from 'node:fs/promises';
import { writeJsonAtomic } from '@virtbus/drivers';
import type { SnapshotSet } from './tree.js';
import { PerDomainFiles } from '../domains/per-domain-files.js';
import { StateDir } from '../state-dir.js';

/** Snapshot metadata, one JSON file per domain under <state-dir>/snapshots, written atomically. */
export class SnapshotStore extends PerDomainFiles {
  constructor(stateDir: string) {
    super(StateDir.snapshots(stateDir), '.json');
  }

  async load(uuid: string): Promise<SnapshotSet> {
    try {
      return JSON.parse(await readFile(this.path(uuid), 'utf8')) as SnapshotSet;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { snapshots: [] };
      throw error;
    }
  }

  async save(uuid: string, set: SnapshotSet): Promise<void> {
    if (set.snapshots.length === 0) return this.remove(uuid);
    await writeJsonAtomic(this.path(uuid), set);
  }
}

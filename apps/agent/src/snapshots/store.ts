import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonAtomic } from '@virtbus/drivers';
import type { SnapshotSet } from './tree.js';
import { StateDir } from '../state-dir.js';

/** Snapshot metadata, one JSON file per domain under <state-dir>/snapshots, written atomically. */
export class SnapshotStore {
  private readonly dir: string;

  constructor(stateDir: string) {
    this.dir = StateDir.snapshots(stateDir);
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
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

  async remove(uuid: string): Promise<void> {
    await rm(this.path(uuid), { force: true });
  }

  private path(uuid: string): string {
    return join(this.dir, `${uuid.toLowerCase()}.json`);
  }
}

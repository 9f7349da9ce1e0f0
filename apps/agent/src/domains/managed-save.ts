import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ManagedSaveInfo } from '@virtbus/api-contract';
import { StateDir } from '../state-dir.js';

/** Managed save images (libvirt's managedsave): one per domain in the state dir; a plain start resumes from it. */
export class ManagedSaveImages {
  private readonly dir: string;

  constructor(stateDir: string) {
    this.dir = StateDir.managedSave(stateDir);
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  path(uuid: string): string {
    return join(this.dir, `${uuid.toLowerCase()}.save`);
  }

  async info(uuid: string): Promise<ManagedSaveInfo> {
    try {
      const info = await stat(this.path(uuid));
      return { domain: uuid, present: true, sizeBytes: info.size, createdAt: info.mtime.toISOString() };
    } catch {
      return { domain: uuid, present: false };
    }
  }

  async exists(uuid: string): Promise<boolean> {
    return (await this.info(uuid)).present;
  }

  async remove(uuid: string): Promise<void> {
    await rm(this.path(uuid), { force: true });
  }
}

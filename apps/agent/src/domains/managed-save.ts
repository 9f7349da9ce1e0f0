import { stat } from 'node:fs/promises';
import type { ManagedSaveInfo } from '@virtbus/api-contract';
import { StateDir } from '../state-dir.js';
import { PerDomainFiles } from './per-domain-files.js';

/** Managed save images (libvirt's managedsave): one per domain in the state dir; a plain start resumes from it. */
export class ManagedSaveImages extends PerDomainFiles {
  constructor(stateDir: string) {
    super(StateDir.managedSave(stateDir), '.save');
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
}

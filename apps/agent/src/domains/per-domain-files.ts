import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** A state-dir folder holding at most one file per domain, named by its uuid (snapshot metadata, managed save images). */
export class PerDomainFiles {
  constructor(
    private readonly dir: string,
    private readonly extension: string,
  ) {}

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  path(uuid: string): string {
    return join(this.dir, `${uuid.toLowerCase()}${this.extension}`);
  }

  async remove(uuid: string): Promise<void> {
    await rm(this.path(uuid), { force: true });
  }
}

import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isObjectName, ObjectName, Uuid } from '@virtbus/api-contract';
import { writeJsonAtomic } from '@virtbus/drivers';
import type { Logger } from 'pino';

/** The fields every stored definition starts with. */
export const StoredIdentityFields = { uuid: Uuid, name: ObjectName };

/** Named definitions kept one JSON file each (`<name>.json`) in one state directory: pools, networks, firewall rule sets. */
export class JsonDirStore<T extends { readonly name: string }> {
  constructor(
    readonly dir: string,
    /** Checks one file's content; throws when it is not a valid `T`. */
    private readonly parse: (value: unknown) => T,
    /** What a file holds, for the log ('pool definition'). */
    private readonly what: string,
    private readonly logger: Logger,
  ) {}

  async loadAll(): Promise<T[]> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const items: T[] = [];
    for (const file of await readdir(this.dir)) {
      if (!file.endsWith('.json') || !isObjectName(file.slice(0, -5))) continue;
      const path = join(this.dir, file);
      try {
        items.push(this.parse(JSON.parse(await readFile(path, 'utf8'))));
      } catch (error) {
        // A damaged file is kept for a person to inspect, never silently deleted.
        this.logger.error({ err: error, path }, `ignoring unreadable ${this.what}`);
      }
    }
    return items;
  }

  async save(item: T): Promise<void> {
    await writeJsonAtomic(join(this.dir, `${item.name}.json`), item);
  }

  async remove(name: string): Promise<void> {
    await rm(join(this.dir, `${name}.json`), { force: true });
  }
}

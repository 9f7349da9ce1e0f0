import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** PATH, then the system directories a daemon's PATH may lack (sbin for root tools, local for hand-built QEMU). */
const SEARCH_PATH = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/sbin', '/bin', '/sbin', '/usr/local/bin'].filter(Boolean);

/** The first executable `name` in `dirs`, or undefined. */
export function findExecutable(name: string, dirs: readonly string[] = SEARCH_PATH): string | undefined {
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

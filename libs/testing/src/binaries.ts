import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

const SEARCH_PATH = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];

export function findBinary(name: string): string | undefined {
  for (const dir of SEARCH_PATH) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

export function requireBinary(name: string): string {
  const path = findBinary(name);
  if (!path) throw new Error(`${name} is not installed (run tools/setup/ensure-system.sh)`);
  return path;
}

/**
 * Whether a test needing `name` may run. In CI a missing binary is a failure, never a skip;
 * on a developer's machine the test is skipped with the reason printed.
 */
export function hasBinaryOrSkip(name: string): boolean {
  if (findBinary(name)) return true;
  if (process.env.CI) throw new Error(`CI must have ${name}: tools/setup/ensure-system.sh installs it`);
  console.warn(`skipping: ${name} is not installed on this machine (CI installs it)`);
  return false;
}

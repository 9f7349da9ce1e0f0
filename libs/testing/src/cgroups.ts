import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Every cgroup directory (any hierarchy, a few levels deep) whose name contains `needle`: leftovers a test must not leave. */
export function cgroupDirsNamed(needle: string, root = '/sys/fs/cgroup'): string[] {
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    if (depth > 4) return;
    let entries: string[];
    try {
      entries = readdirSync(dir, { withFileTypes: true })
        .filter((entry) => entry.isDirectory())
        .map((entry) => entry.name);
    } catch {
      return;
    }
    for (const entry of entries) {
      const path = join(dir, entry);
      if (entry.includes(needle)) found.push(path);
      walk(path, depth + 1);
    }
  };
  walk(root, 0);
  return found;
}

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Whether this process may mount a tmpfs (root, no seccomp/namespace restriction). */
export function canMountTmpfs(): boolean {
  const probe = mkdtempSync(join(tmpdir(), 'virtbus-mount-probe-'));
  try {
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe]).status !== 0) return false;
    spawnSync('umount', [probe]);
    return true;
  } finally {
    rmdirSync(probe);
  }
}

/** Writes zeros into `path` until its file system is full (ENOSPC). */
export async function fillFileSystem(path: string, chunkBytes = 4096): Promise<void> {
  const file = await open(path, 'w');
  const chunk = Buffer.alloc(chunkBytes);
  try {
    for (;;) await file.write(chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    await file.close().catch(() => undefined);
  }
}

import { mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';
import { randomBytes } from 'node:crypto';

/** Writes `data` to `temp` (synced as asked), then renames it over `path`; a failure leaves no temp file behind. */
export async function writeAndRename(temp: string, path: string, data: string | Uint8Array, sync: 'full' | 'data' | 'none'): Promise<void> {
  const handle = await open(temp, 'w', 0o600);
  try {
    await handle.writeFile(data);
    if (sync === 'full') await handle.sync();
    else if (sync === 'data') await handle.datasync();
  } catch (error) {
    await handle.close();
    await rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** Write to a temp file, fsync, rename over the target, fsync the directory: readers see old or new, never half. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  await writeAndRename(join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`), path, data, 'full');
  const dirHandle = await open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** The name writeFileAtomic gives its temp file: `.<target name>.<12 hex>.tmp`. */
export const ATOMIC_TEMP_NAME = /^\..+\.[0-9a-f]{12}\.tmp$/;

/** Removes the temp files of atomic writes a crash left in dir and below (files only; symlinks not followed); returns their paths. */
export async function removeAtomicTemps(dir: string, maxDepth = 8): Promise<string[]> {
  const removed: string[] = [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return removed;
    throw error;
  }
  for (const entry of entries) {
    // no path built for the other entries: a directory of 10,000 domain files is read at every agent start
    if (entry.isFile()) {
      if (!entry.name.startsWith('.') || !ATOMIC_TEMP_NAME.test(entry.name)) continue;
      const path = join(dir, entry.name);
      await rm(path, { force: true });
      removed.push(path);
    } else if (entry.isDirectory() && maxDepth > 0) {
      removed.push(...(await removeAtomicTemps(join(dir, entry.name), maxDepth - 1)));
    }
  }
  return removed;
}

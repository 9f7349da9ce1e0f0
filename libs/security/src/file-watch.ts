import { unwatchFile, watchFile, type Stats } from 'node:fs';

/** How often watched files are looked at: a change applies within a second. */
export const FILE_WATCH_INTERVAL_MS = 250;

/**
 * Calls `onChange` when any of the files changes (also when it is replaced by a rename, as editors and
 * `token.ts` do); polling a stat is cheap and, unlike inotify, survives the file being replaced.
 * Returns the function that stops watching.
 */
export function watchFiles(paths: readonly string[], onChange: (path: string) => void, intervalMs = FILE_WATCH_INTERVAL_MS): () => void {
  const listeners = paths.map((path) => {
    const listener = (current: Stats, previous: Stats) => {
      if (current.mtimeMs !== previous.mtimeMs || current.ino !== previous.ino || current.size !== previous.size) onChange(path);
    };
    watchFile(path, { interval: intervalMs, persistent: false }, listener);
    return { path, listener };
  });
  return () => {
    for (const { path, listener } of listeners) unwatchFile(path, listener);
  };
}

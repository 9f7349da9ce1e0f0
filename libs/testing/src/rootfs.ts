import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const BUILD_SCRIPT = fileURLToPath(new URL('../../../tools/rootfs/build-busybox.sh', import.meta.url));

/** Strings the busybox rootfs prints on its console when its init runs /etc/init.d/rcS. */
export const ROOTFS_MARKERS = { ready: 'CONTAINER-READY' } as const;

export class RootfsBuildError extends Error {
  override readonly name = 'RootfsBuildError';
}

let pending: Promise<string> | undefined;

/** Builds (or reuses the cached) busybox root filesystem for containers; the script runs at most once per process. */
export function ensureBusyboxRootfs(): Promise<string> {
  pending ??= execFileAsync(BUILD_SCRIPT, [], { timeout: 120_000 })
    .then(({ stdout }) => stdout.trim().split('\n').at(-1) ?? '')
    .then((path) => {
      if (!path.startsWith('/')) throw new RootfsBuildError(`build-busybox.sh printed no path: ${path}`);
      return path;
    })
    .catch((error: unknown) => {
      pending = undefined;
      if (error instanceof RootfsBuildError) throw error;
      const stderr = (error as { stderr?: string }).stderr ?? '';
      throw new RootfsBuildError(`tools/rootfs/build-busybox.sh failed: ${stderr.trim() || String(error)}`, { cause: error });
    });
  return pending;
}

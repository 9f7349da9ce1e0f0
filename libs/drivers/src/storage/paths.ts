import { realpath } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { VirtError, isObjectName } from '@virtbus/api-contract';

/** The path of `name` inside `root`; refuses names that are not plain object names or that would leave `root`. */
export function volumePathIn(root: string, name: string): string {
  if (!isObjectName(name)) throw new VirtError('INVALID_ARG', `invalid volume name ${JSON.stringify(name)}`);
  const base = resolve(root);
  const path = resolve(join(base, name));
  if (!path.startsWith(base + sep)) throw new VirtError('INVALID_ARG', `volume ${JSON.stringify(name)} would escape its pool`);
  return path;
}

/** Same check after resolving symlinks: an existing volume must really live inside the pool directory. */
export async function assertRealPathInside(root: string, path: string): Promise<void> {
  const [realRoot, realPath] = await Promise.all([realpath(root), realpath(path)]);
  if (!realPath.startsWith(realRoot + sep)) throw new VirtError('INVALID_ARG', `${path} resolves outside its pool`);
}

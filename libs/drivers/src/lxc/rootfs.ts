import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { basename, dirname, posix } from 'node:path';
import { promisify } from 'node:util';
import { VirtError } from '@virtbus/api-contract';
import { detectInitFlavor, type InitFlavor } from './lxc-config.js';

const execFileAsync = promisify(execFile);

/** How LXC reaches a root filesystem: a host directory, a raw image file (loop) or a block device. */
export type RootfsKind = 'dir' | 'loop' | 'block';

export interface ContainerRootfs {
  kind: RootfsKind;
  path: string;
}

/** The kind of root filesystem at `path`, or INVALID_ARG when it is none of them. */
export async function inspectRootfs(path: string): Promise<ContainerRootfs> {
  const info = await stat(path).catch(() => undefined);
  if (info?.isDirectory()) return { kind: 'dir', path };
  if (info?.isFile()) return { kind: 'loop', path };
  if (info?.isBlockDevice()) return { kind: 'block', path };
  throw new VirtError('INVALID_ARG', `container root filesystem ${path} is not a directory, an image file or a block device`);
}

/** `lxc.rootfs.path` for a root filesystem. */
export function lxcRootfsPath(rootfs: ContainerRootfs): string {
  if (rootfs.kind === 'dir') return `dir:${rootfs.path}`;
  if (rootfs.kind === 'loop') return `loop:${rootfs.path}`;
  return rootfs.path;
}

/** The target of a symlink inside an ext2/3/4 image, read with debugfs without mounting; undefined when not a symlink. */
async function readlinkInImage(image: string, path: string): Promise<string | undefined> {
  try {
    const { stdout } = await execFileAsync('debugfs', ['-R', `stat ${path}`, image], { timeout: 10_000, maxBuffer: 1024 * 1024 });
    const fast = /Fast link dest: "(.*)"/.exec(stdout);
    return fast?.[1];
  } catch {
    return undefined;
  }
}

/** Which init a root filesystem runs; images are read with debugfs (ext filesystems), anything else counts as `other`. */
export async function initFlavorOf(rootfs: ContainerRootfs, initPath: string): Promise<InitFlavor> {
  if (rootfs.kind === 'dir') return detectInitFlavor(rootfs.path, initPath);
  let path = initPath;
  for (let hop = 0; hop < 16; hop += 1) {
    if (basename(path) === 'busybox') return 'busybox';
    const target = await readlinkInImage(rootfs.path, path);
    if (target === undefined) return 'other';
    path = target.startsWith('/') ? target : posix.join(dirname(path), target);
  }
  return 'other';
}

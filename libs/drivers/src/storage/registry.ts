import type { PoolType } from '@virtbus/api-contract';
import type { PoolBackend } from './backend.js';
import { DirPoolBackend } from './dir.js';
import { LogicalPoolBackend } from './logical.js';

/** Every pool type virtbus ships: a literal map, so adding netfs, iscsi or rbd is one line. */
export const PoolBackends = {
  dir: () => new DirPoolBackend(),
  logical: () => new LogicalPoolBackend(),
} as const satisfies Record<PoolType, () => PoolBackend>;

export function createPoolBackends(): Record<PoolType, PoolBackend> {
  return { dir: PoolBackends.dir(), logical: PoolBackends.logical() };
}

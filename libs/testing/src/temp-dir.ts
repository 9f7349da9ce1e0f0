import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { tearDown } from './teardown.js';

/** A fresh directory under the system temp dir for the enclosing file or describe block, removed after it. */
export function useTempDir(prefix: string): { readonly path: string } {
  let path = '';
  beforeAll(async () => {
    path = await mkdtemp(join(tmpdir(), prefix));
  });
  afterAll(() => tearDown(path));
  return {
    get path() {
      if (!path) throw new Error(`the temp dir ${prefix}… is used before its beforeAll ran`);
      return path;
    },
  };
}

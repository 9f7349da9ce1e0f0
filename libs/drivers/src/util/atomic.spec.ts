import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ATOMIC_TEMP_NAME, removeAtomicTemps, writeFileAtomic } from './atomic.js';

describe('atomic writes', () => {
  let dir = '';
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('names its temp file so ATOMIC_TEMP_NAME matches it, and leaves none after a write', async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtbus-atomic-'));
    await writeFileAtomic(join(dir, 'a.json'), '{}');
    expect(await readdir(dir)).toEqual(['a.json']);
    expect(ATOMIC_TEMP_NAME.test('.a.json.0123456789ab.tmp')).toBe(true);
    for (const name of ['a.json.0123456789ab.tmp', '.a.json.0123456789AB.tmp', '.a.json.012345.tmp', '.a.json.0123456789ab.tmp~', '.0123456789ab.tmp']) {
      expect(ATOMIC_TEMP_NAME.test(name), name).toBe(false);
    }
  });

  it('removeAtomicTemps removes leftovers below the directory, not look-alikes, not through symlinks', async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtbus-atomic-'));
    const outside = await mkdtemp(join(tmpdir(), 'virtbus-atomic-outside-'));
    try {
      await mkdir(join(dir, 'sub', 'deeper'), { recursive: true });
      await writeFile(join(dir, '.x.json.a1b2c3d4e5f6.tmp'), '');
      await writeFile(join(dir, 'sub', 'deeper', '.y.a1b2c3d4e5f6.tmp'), '');
      await writeFile(join(dir, 'x.json'), '');
      await writeFile(join(outside, '.z.json.a1b2c3d4e5f6.tmp'), '');
      await symlink(outside, join(dir, 'link'));
      const removed = await removeAtomicTemps(dir);
      expect(removed.sort()).toEqual([join(dir, '.x.json.a1b2c3d4e5f6.tmp'), join(dir, 'sub', 'deeper', '.y.a1b2c3d4e5f6.tmp')].sort());
      expect((await readdir(dir)).sort()).toEqual(['link', 'sub', 'x.json']);
      expect(await readdir(outside)).toEqual(['.z.json.a1b2c3d4e5f6.tmp']);
      expect(await removeAtomicTemps(join(dir, 'missing'))).toEqual([]);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });
});

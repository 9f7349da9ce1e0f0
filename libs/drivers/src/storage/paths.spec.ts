import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtError } from '@virtbus/api-contract';
import { afterAll, describe, expect, it } from 'vitest';
import { assertRealPathInside, volumePathIn } from './paths.js';

const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

describe('volumePathIn', () => {
  it('keeps plain names inside the pool', () => {
    expect(volumePathIn('/pools/p1', 'disk.qcow2')).toBe('/pools/p1/disk.qcow2');
    expect(volumePathIn('/pools/p1/', 'a-b_c+1')).toBe('/pools/p1/a-b_c+1');
  });

  it('refuses separators, dot-dot, control characters and hidden names', () => {
    for (const name of ['../etc', '..', '.', 'a/b', '/abs', 'a\u0000b', 'x\ny', '.hidden', 'a..b', '', 'a'.repeat(65)]) {
      expect(() => volumePathIn('/pools/p1', name), JSON.stringify(name)).toThrow(VirtError);
    }
  });

  it('catches a symlink that leads out of the pool', async () => {
    const root = await mkdtemp(join(tmpdir(), 'vb-paths-'));
    dirs.push(root);
    await mkdir(join(root, 'pool'));
    await writeFile(join(root, 'secret'), 'x');
    await writeFile(join(root, 'pool', 'inside'), 'x');
    await symlink(join(root, 'secret'), join(root, 'pool', 'escape'));
    await expect(assertRealPathInside(join(root, 'pool'), join(root, 'pool', 'inside'))).resolves.toBeUndefined();
    await expect(assertRealPathInside(join(root, 'pool'), join(root, 'pool', 'escape'))).rejects.toThrow(/outside its pool/);
  });
});

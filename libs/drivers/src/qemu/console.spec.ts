import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { trimLogTail } from './console.js';

describe('trimLogTail', () => {
  it('keeps the last bytes of a log and reports what it dropped', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'console-spec-'));
    try {
      const log = join(dir, 'console.log');
      await writeFile(log, 'abcdefghij');
      await expect(trimLogTail(log, 4)).resolves.toBe(6);
      await expect(readFile(log, 'utf8')).resolves.toBe('ghij');
      await expect(trimLogTail(log, 8)).resolves.toBe(0);
      await expect(readFile(log, 'utf8')).resolves.toBe('ghij');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

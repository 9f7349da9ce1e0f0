import { describe, expect, it } from 'vitest';
import { VirtError } from './errors.js';
import { parseSize } from './storage.js';

describe('parseSize', () => {
  it('reads bytes and libvirt units', () => {
    expect(parseSize(0)).toBe(0);
    expect(parseSize(4096)).toBe(4096);
    expect(parseSize('512')).toBe(512);
    expect(parseSize('512B')).toBe(512);
    expect(parseSize('1K')).toBe(1024);
    expect(parseSize('1KiB')).toBe(1024);
    expect(parseSize('1KB')).toBe(1000);
    expect(parseSize('10G')).toBe(10 * 1024 ** 3);
    expect(parseSize('2GB')).toBe(2 * 1000 ** 3);
    expect(parseSize('1T')).toBe(1024 ** 4);
    expect(parseSize('3P')).toBe(3 * 1024 ** 5);
  });

  it('refuses malformed and oversized sizes with INVALID_ARG', () => {
    for (const bad of ['', 'G', '1.5G', '-1', '1X', '1iB', '1 G', '10g', '9999999999999999P']) {
      expect(() => parseSize(bad), bad).toThrow(VirtError);
    }
    expect(() => parseSize(-1)).toThrow(VirtError);
    expect(() => parseSize(1.5)).toThrow(VirtError);
  });
});

import { describe, expect, it } from 'vitest';
import { parseQemuImgInfo } from './qemu-img.js';

describe('parseQemuImgInfo', () => {
  it('reads a single image', () => {
    const info = parseQemuImgInfo(JSON.stringify({ filename: '/p/a', format: 'raw', 'virtual-size': 1048576, 'actual-size': 4096, 'dirty-flag': false }));
    expect(info).toEqual({ format: 'raw', virtualSize: 1048576, actualSize: 4096, backingChain: [] });
  });

  it('reads a backing chain, the image first', () => {
    const chain = [
      { filename: '/p/top', format: 'qcow2', 'virtual-size': 2147483648, 'actual-size': 200704, 'backing-filename': '/p/mid' },
      { filename: '/p/mid', format: 'qcow2', 'virtual-size': 1073741824, 'actual-size': 196608, 'backing-filename': '/p/base' },
      { filename: '/p/base', format: 'raw', 'virtual-size': 1073741824, 'actual-size': 0 },
    ];
    const info = parseQemuImgInfo(JSON.stringify(chain));
    expect(info.format).toBe('qcow2');
    expect(info.virtualSize).toBe(2147483648);
    expect(info.backingChain).toEqual([
      { path: '/p/mid', format: 'qcow2' },
      { path: '/p/base', format: 'raw' },
    ]);
  });

  it('rejects output that is not qemu-img JSON', () => {
    expect(() => parseQemuImgInfo('qemu-img: Could not open')).toThrow(/not JSON/);
    expect(() => parseQemuImgInfo('{}')).toThrow(/no format/);
  });
});

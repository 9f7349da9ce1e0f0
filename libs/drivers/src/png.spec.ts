import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { VirtError } from '@virtbus/api-contract';
import { pngFromPpm } from './png.js';

describe('pngFromPpm', () => {
  it("turns QEMU's binary PPM into an RGB PNG with the same pixels", () => {
    const pixels = Buffer.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 1, 2, 3]);
    const png = pngFromPpm(Buffer.concat([Buffer.from('P6\n# comment\n2 2\n255\n'), pixels]));
    expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
    expect([png.readUInt32BE(16), png.readUInt32BE(20), png[24], png[25]]).toEqual([2, 2, 8, 2]);
    const idatAt = png.indexOf('IDAT');
    const raw = inflateSync(png.subarray(idatAt + 4, idatAt + 4 + png.readUInt32BE(idatAt - 4)));
    expect(raw).toEqual(Buffer.from([0, ...pixels.subarray(0, 6), 0, ...pixels.subarray(6)]));
  });

  it('refuses what is not an 8-bit binary PPM', () => {
    expect(() => pngFromPpm(Buffer.from('P3\n1 1\n255\n1 2 3\n'))).toThrow(VirtError);
    expect(() => pngFromPpm(Buffer.from('P6\n4 4\n255\n\x01\x02'))).toThrow(/not an 8-bit binary PPM/);
  });
});

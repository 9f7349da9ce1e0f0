import { crc32, deflateSync } from 'node:zlib';
import { VirtError } from '@virtbus/api-contract';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** An 8-bit RGB PNG of `rgb` (width * height * 3 bytes, rows top to bottom), each row unfiltered. */
export function encodePng(width: number, height: number, rgb: Buffer): Buffer {
  const stride = width * 3;
  const rows = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) rgb.copy(rows, y * (stride + 1) + 1, y * stride, (y + 1) * stride);
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([SIGNATURE, chunk('IHDR', header), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}

/** A binary PPM (P6, maxval 255: what QEMU's screendump writes) as PNG. */
export function pngFromPpm(ppm: Buffer): Buffer {
  // header: magic, width, height, maxval, separated by whitespace (comments start with #), then one whitespace byte
  const fields: string[] = [];
  let at = 0;
  while (fields.length < 4 && at < ppm.length && at < 1024) {
    const c = ppm[at]!;
    if (c === 0x23) while (at < ppm.length && ppm[at] !== 0x0a) at++;
    else if (/\s/.test(String.fromCharCode(c))) at++;
    else {
      const start = at;
      while (at < ppm.length && !/\s/.test(String.fromCharCode(ppm[at]!))) at++;
      fields.push(ppm.toString('latin1', start, at));
    }
  }
  const [magic, w, h, max] = fields;
  const width = Number(w);
  const height = Number(h);
  const pixels = ppm.subarray(at + 1);
  if (magic !== 'P6' || max !== '255' || !(width > 0) || !(height > 0) || pixels.length < width * height * 3) {
    throw new VirtError('OPERATION_FAILED', `screenshot: not an 8-bit binary PPM (${fields.join(' ').slice(0, 40)}, ${pixels.length} pixel bytes)`);
  }
  return encodePng(width, height, pixels);
}

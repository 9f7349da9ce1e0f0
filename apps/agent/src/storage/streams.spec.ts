import { describe, expect, it } from 'vitest';
import { chunkBytesFor } from './streams.js';

describe('chunkBytesFor', () => {
  it('fills a 1 MiB max_payload with room for the headers, in 64 KiB steps', () => {
    expect(chunkBytesFor(1024 * 1024)).toBe(960 * 1024);
    expect(chunkBytesFor(undefined)).toBe(960 * 1024);
  });

  it('never exceeds 1 MiB on a server that takes larger messages', () => {
    expect(chunkBytesFor(8 * 1024 * 1024)).toBe(1024 * 1024);
  });

  it('stays under a small max_payload', () => {
    expect(chunkBytesFor(256 * 1024)).toBe(192 * 1024);
    const tiny = chunkBytesFor(20 * 1024);
    expect(tiny).toBeGreaterThan(0);
    expect(tiny + 8 * 1024).toBeLessThanOrEqual(20 * 1024);
  });
});

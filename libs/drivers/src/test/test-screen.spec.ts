import { inflateSync } from 'node:zlib';
import { VirtError, vncAuthResponse } from '@virtbus/api-contract';
import { describe, expect, it } from 'vitest';
import { TestScreen } from './test-screen.js';

const UUID = '1b2c3d4e-0000-4000-8000-000000000001';

/** Width, height and the first pixel of an 8-bit RGB PNG the screen wrote. */
function readPng(png: Buffer): { width: number; height: number; first: number[] } {
  expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  const idat = png.indexOf('IDAT');
  const rows = inflateSync(png.subarray(idat + 4, idat + 4 + png.readUInt32BE(idat - 4)));
  expect(rows.length).toBe((width * 3 + 1) * height);
  return { width, height, first: [...rows.subarray(1, 4)] };
}

describe('test driver screen', () => {
  it('is a PNG whose top-left bar lights up with each key press, and refuses unknown key names', () => {
    const screen = new TestScreen('vm1', UUID);
    const before = readPng(screen.png());
    expect([before.width, before.height]).toEqual([320, 200]);
    expect(before.first).toEqual([0x1b, 0x2c, 0x3d]);
    screen.pressKeys(['ctrl', 'alt', 'delete']);
    expect(readPng(screen.png()).first).toEqual([255, 255, 255]);
    expect(() => screen.pressKeys(['Not A Key'])).toThrow(VirtError);
  });

  it('speaks the server half of RFB 3.8: version, security None, ServerInit, raw frames in the viewer’s pixel format', async () => {
    const screen = new TestScreen('vm1', UUID);
    const session = screen.session();
    let received = Buffer.alloc(0);
    session.onData((chunk) => (received = Buffer.concat([received, chunk])));
    await Promise.resolve();
    expect(received.length).toBe(0);
    session.resume();
    expect(received.toString('latin1')).toBe('RFB 003.008\n');
    session.write(Buffer.from('RFB 003.008\n'));
    expect([...received.subarray(12)]).toEqual([1, 1]);
    session.write(Buffer.from([1]));
    expect(received.readUInt32BE(14)).toBe(0);
    session.write(Buffer.from([1]));
    const init = received.subarray(18);
    expect([init.readUInt16BE(0), init.readUInt16BE(2), init[4]]).toEqual([320, 200, 32]);
    expect(init.subarray(24).toString()).toBe('vm1');
    received = Buffer.alloc(0);
    // SetPixelFormat as noVNC sends it (red in the low byte), then a full update request, split across two writes
    const pixelFormat = Buffer.alloc(20);
    pixelFormat.set([0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 0, 8, 16], 0);
    const request = Buffer.from([3, 0, 0, 0, 0, 0, 1, 64, 0, 200]);
    session.write(Buffer.concat([pixelFormat, request.subarray(0, 4)]));
    session.write(request.subarray(4));
    expect(received.length).toBe(16 + 320 * 200 * 4);
    expect(received.readUInt32LE(16)).toBe(0x1b | (0x2c << 8) | (0x3d << 16));
    let closed = false;
    session.onClose(() => (closed = true));
    screen.end();
    expect(closed).toBe(true);
  });

  it('ends a viewer that sends something that is not RFB', async () => {
    const session = new TestScreen('vm1', UUID).session();
    let closed = false;
    session.onClose(() => (closed = true));
    session.write(Buffer.from('RFB 003.008\n'));
    session.write(Buffer.from([2]));
    expect(closed).toBe(true);
  });
});

describe('test driver screen with a VNC password', () => {
  /** Version and security type 2 done: the 16-byte challenge the server sent. */
  async function challenged(screen: TestScreen): Promise<{ session: ReturnType<TestScreen['session']>; received: () => Buffer; closed: () => boolean }> {
    const session = screen.session();
    let received = Buffer.alloc(0);
    let closed = false;
    session.onData((chunk) => (received = Buffer.concat([received, chunk])));
    session.onClose(() => (closed = true));
    await Promise.resolve();
    session.resume();
    session.write(Buffer.from('RFB 003.008\n'));
    expect([...received.subarray(12, 14)]).toEqual([1, 2]);
    session.write(Buffer.from([2]));
    expect(received.length).toBe(14 + 16);
    return { session, received: () => received, closed: () => closed };
  }

  it('offers only VNC authentication and lets in the viewer whose DES response matches', async () => {
    const viewer = await challenged(new TestScreen('vm1', UUID, 'secret'));
    viewer.session.write(vncAuthResponse('secret', viewer.received().subarray(14, 30)));
    expect(viewer.received().readUInt32BE(30)).toBe(0);
    viewer.session.write(Buffer.from([1]));
    expect(viewer.received().subarray(34 + 24).toString()).toBe('vm1');
  });

  it('answers a wrong response with SecurityResult failed and a reason, then closes', async () => {
    const viewer = await challenged(new TestScreen('vm1', UUID, 'secret'));
    viewer.session.write(vncAuthResponse('wrong', viewer.received().subarray(14, 30)));
    const result = viewer.received().subarray(30);
    expect(result.readUInt32BE(0)).toBe(1);
    expect(result.subarray(8, 8 + result.readUInt32BE(4)).toString()).toBe('Authentication failed');
    expect(viewer.closed()).toBe(true);
  });

  it('takes a new password for the next viewer; a screen started without one stays open (like QEMU)', async () => {
    const screen = new TestScreen('vm1', UUID, 'secret');
    screen.setPassword('other');
    const viewer = await challenged(screen);
    viewer.session.write(vncAuthResponse('other', viewer.received().subarray(14, 30)));
    expect(viewer.received().readUInt32BE(30)).toBe(0);
    const open = new TestScreen('vm1', UUID);
    open.setPassword('late');
    const session = open.session();
    let received = Buffer.alloc(0);
    session.onData((chunk) => (received = Buffer.concat([received, chunk])));
    await Promise.resolve();
    session.resume();
    session.write(Buffer.from('RFB 003.008\n'));
    expect([...received.subarray(12)]).toEqual([1, 1]);
  });
});

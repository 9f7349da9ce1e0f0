import { randomBytes, timingSafeEqual } from 'node:crypto';
import { VirtError, vncAuthResponse } from '@virtbus/api-contract';
import type { GraphicsSession } from '../driver.js';
import { encodePng } from '../png.js';

const WIDTH = 320;
const HEIGHT = 200;
/** QEMU's key names (qcodes) are lower-case words; the test screen takes the same shape and refuses others like QEMU. */
const KEY_NAME = /^[a-z0-9_]{1,20}$/;
/** Bytes a viewer may have sent that the screen has not parsed yet (a bound: no RFB client message is larger). */
const MAX_PENDING = 64 * 1024;

/** A simulated screen: a colour per domain, one bar per key pressed, served as PNG and over RFB 3.8 like QEMU's VNC. */
export class TestScreen {
  private keys = 0;
  private readonly base: [number, number, number];
  private readonly viewers = new Set<() => void>();

  constructor(
    private readonly name: string,
    uuid: string,
    private password?: string,
  ) {
    const seed = Number.parseInt(uuid.replace(/-/g, '').slice(0, 6), 16);
    this.base = [(seed >> 16) & 0xff, (seed >> 8) & 0xff, seed & 0xff];
  }

  /** The guest stopped: every viewer's connection ends, as QEMU's VNC server goes with QEMU. */
  end(): void {
    for (const end of [...this.viewers]) end();
  }

  /** Like QEMU: a server started without a password keeps security None (the new one applies at next start). */
  setPassword(password: string): void {
    if (this.password) this.password = password;
  }

  pressKeys(keys: readonly string[]): void {
    for (const key of keys) if (!KEY_NAME.test(key)) throw new VirtError('INVALID_ARG', `send-key: unknown key ${JSON.stringify(key)}`);
    this.keys += 1;
  }

  /** The pixel at (x, y): the domain's colour, with a light bar for each key press so far (up to the width). */
  private pixel(x: number, y: number): [number, number, number] {
    return y < 8 && x < Math.min(this.keys * 8, WIDTH) ? [255, 255, 255] : this.base;
  }

  png(): Buffer {
    const rgb = Buffer.alloc(WIDTH * 3 * HEIGHT);
    for (let y = 0; y < HEIGHT; y++) for (let x = 0; x < WIDTH; x++) rgb.set(this.pixel(x, y), (y * WIDTH + x) * 3);
    return encodePng(WIDTH, HEIGHT, rgb);
  }

  /** One viewer, paused until resumed: the server half of RFB 3.8 with security None (or VNC authentication with a password) and raw rectangles in the viewer's pixel format. */
  session(): GraphicsSession {
    const listeners = new Set<(chunk: Buffer) => void>();
    const closeListeners = new Set<() => void>();
    let pending = Buffer.alloc(0);
    let stage: 'version' | 'security' | 'auth' | 'init' | 'messages' = 'version';
    const challenge = randomBytes(16);
    let format = { bigEndian: false, redShift: 16, greenShift: 8, blueShift: 0 };
    // like QEMU's socket, nothing flows until the reader resumes it (the agent does once the viewer listens)
    let paused = true;
    let held: Buffer[] = [];
    let closed = false;
    const send = (bytes: Buffer) => {
      if (closed) return;
      if (paused) held.push(bytes);
      else for (const listener of listeners) listener(bytes);
    };
    const end = () => {
      if (closed) return;
      closed = true;
      this.viewers.delete(end);
      for (const listener of closeListeners) listener();
    };
    this.viewers.add(end);
    const frame = (): Buffer => {
      const out = Buffer.alloc(16 + WIDTH * HEIGHT * 4);
      out.writeUInt16BE(1, 2);
      out.writeUInt16BE(WIDTH, 8);
      out.writeUInt16BE(HEIGHT, 10);
      for (let y = 0, at = 16; y < HEIGHT; y++) {
        for (let x = 0; x < WIDTH; x++, at += 4) {
          const [r, g, b] = this.pixel(x, y);
          const value = ((r << format.redShift) | (g << format.greenShift) | (b << format.blueShift)) >>> 0;
          if (format.bigEndian) out.writeUInt32BE(value, at);
          else out.writeUInt32LE(value, at);
        }
      }
      return out;
    };
    // one parse step: how many bytes of `pending` it used (0: wait for more)
    const step = (): number => {
      if (stage === 'version') {
        if (pending.length < 12) return 0;
        send(Buffer.from([1, this.password ? 2 : 1]));
        stage = 'security';
        return 12;
      }
      if (stage === 'security') {
        if (pending.length < 1) return 0;
        if (pending[0] !== (this.password ? 2 : 1)) {
          end();
          return pending.length;
        }
        if (this.password) send(challenge);
        else send(Buffer.alloc(4));
        stage = this.password ? 'auth' : 'init';
        return 1;
      }
      if (stage === 'auth') {
        if (pending.length < 16) return 0;
        if (timingSafeEqual(pending.subarray(0, 16), vncAuthResponse(this.password ?? '', challenge))) {
          send(Buffer.alloc(4));
          stage = 'init';
          return 16;
        }
        // RFB 3.8: SecurityResult failed, then the reason, then the server closes
        const reason = Buffer.from('Authentication failed');
        const failed = Buffer.alloc(8 + reason.length);
        failed.writeUInt32BE(1, 0);
        failed.writeUInt32BE(reason.length, 4);
        reason.copy(failed, 8);
        send(failed);
        end();
        return pending.length;
      }
      if (stage === 'init') {
        if (pending.length < 1) return 0;
        const name = Buffer.from(this.name);
        const init = Buffer.alloc(24 + name.length);
        init.writeUInt16BE(WIDTH, 0);
        init.writeUInt16BE(HEIGHT, 2);
        init.set([32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0], 4);
        init.writeUInt32BE(name.length, 20);
        init.set(name, 24);
        send(init);
        stage = 'messages';
        return 1;
      }
      const type = pending[0];
      const need = type === 0 ? 20 : type === 2 ? (pending.length >= 4 ? 4 + 4 * pending.readUInt16BE(2) : 4) : type === 3 ? 10 : type === 4 ? 8 : type === 5 ? 6 : type === 6 ? (pending.length >= 8 ? 8 + pending.readUInt32BE(4) : 8) : -1;
      if (need < 0) {
        end();
        return pending.length;
      }
      if (pending.length < need) return 0;
      if (type === 0) {
        if (pending[4] !== 32 || pending[7] !== 1) {
          end();
          return pending.length;
        }
        format = { bigEndian: pending[6] !== 0, redShift: pending[14]!, greenShift: pending[15]!, blueShift: pending[16]! };
      } else if (type === 3) send(frame());
      else if (type === 4 && pending[1] === 1) this.keys += 1;
      return need;
    };
    return {
      onData: (listener) => {
        const first = listeners.size === 0;
        listeners.add(listener);
        if (first) queueMicrotask(() => send(Buffer.from('RFB 003.008\n')));
      },
      onClose: (listener) => closeListeners.add(listener),
      write: (data) => {
        if (closed) return;
        pending = Buffer.concat([pending, data]);
        if (pending.length > MAX_PENDING) return end();
        for (let used = step(); used > 0 && !closed; used = pending.length > 0 ? step() : 0) pending = pending.subarray(used);
      },
      close: () => {
        closed = true;
        this.viewers.delete(end);
        listeners.clear();
      },
      pause: () => {
        paused = true;
      },
      resume: () => {
        paused = false;
        const out = held;
        held = [];
        for (const bytes of out) send(bytes);
      },
    };
  }
}

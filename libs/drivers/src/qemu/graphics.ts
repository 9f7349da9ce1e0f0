import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { readFile, rm } from 'node:fs/promises';
import { VirtError } from '@virtbus/api-contract';
import type { DomainRecord, GraphicsCapability, GraphicsSession } from '../driver.js';
import type { QemuPaths } from './command-line.js';
import type { QemuInstance } from './instance.js';
import { QmpCommandError } from './qmp/index.js';

/** A screendump larger than this is refused: its base64 must fit one bus reply. */
export const MAX_SCREENSHOT_BYTES = 700 * 1024;
const CONNECT_TIMEOUT_MS = 5_000;

export interface QemuGraphicsHooks {
  /** The domain's running QEMU with a connected QMP, or OPERATION_INVALID. */
  live(domain: DomainRecord): QemuInstance;
  paths(uuid: string): QemuPaths;
}

/** A viewer's own connection to QEMU's VNC socket (QEMU serves each client separately, so nothing is shared here). */
function socketSession(socket: Socket): GraphicsSession {
  let closed = false;
  const closeListeners = new Set<() => void>();
  socket.on('close', () => {
    closed = true;
    for (const listener of closeListeners) listener();
    closeListeners.clear();
  });
  socket.on('error', () => socket.destroy());
  return {
    onData: (listener) => socket.on('data', listener),
    onClose: (listener) => {
      if (closed) queueMicrotask(listener);
      else closeListeners.add(listener);
    },
    write: (data) => {
      if (!closed) socket.write(data);
    },
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    close: () => socket.destroy(),
  };
}

/** A viewer's connection to a VNC server's unix socket, paused until the relay resumes it. */
export async function connectVnc(path: string, what: string): Promise<GraphicsSession> {
  const socket = await new Promise<Socket>((resolve, reject) => {
    const socket = connect({ path });
    const timer = setTimeout(() => socket.destroy(new Error('timed out')), CONNECT_TIMEOUT_MS);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.pause();
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(failure(error, what));
    });
  });
  return socketSession(socket);
}

function failure(error: unknown, what: string): VirtError {
  if (error instanceof VirtError) return error;
  if (error instanceof QmpCommandError) return new VirtError('OPERATION_FAILED', `${what}: ${error.desc}`, { cause: error });
  return new VirtError('OPERATION_FAILED', `${what}: ${(error as Error)?.message ?? String(error)}`, { cause: error });
}

/** VNC on a unix socket in the domain's runtime directory, screendump and send-key over QMP. */
export class QemuGraphics implements GraphicsCapability {
  constructor(private readonly hooks: QemuGraphicsHooks) {}

  async openGraphics(domain: DomainRecord): Promise<GraphicsSession> {
    this.vncOf(domain);
    return connectVnc(this.hooks.paths(domain.config.uuid).vncSocket, `VNC server of ${domain.config.name}`);
  }

  async screenshot(domain: DomainRecord): Promise<Buffer> {
    const instance = this.vncOf(domain);
    // one file per call: screenshots are reads and may overlap
    const file = `${this.hooks.paths(domain.config.uuid).screenshot}.${randomBytes(6).toString('hex')}`;
    try {
      await instance.qmp!.ui.screendump(file);
      const png = await readFile(file);
      if (png.length > MAX_SCREENSHOT_BYTES) throw new VirtError('OPERATION_FAILED', `screenshot of ${domain.config.name} is ${png.length} bytes, more than one reply holds`);
      return png;
    } catch (error) {
      throw failure(error, `screenshot of ${domain.config.name}`);
    } finally {
      await rm(file, { force: true });
    }
  }

  async sendKey(domain: DomainRecord, keys: readonly string[], holdTimeMs: number): Promise<void> {
    const instance = this.hooks.live(domain);
    try {
      await instance.qmp!.ui.sendKey(keys, holdTimeMs);
    } catch (error) {
      if (error instanceof QmpCommandError && error.errorClass === 'GenericError') throw new VirtError('INVALID_ARG', `send-key: ${error.desc}`, { cause: error });
      throw failure(error, `send-key to ${domain.config.name}`);
    }
  }

  async setPassword(domain: DomainRecord, password: string): Promise<void> {
    const instance = this.hooks.live(domain);
    // a server started without password=on refuses set_password: the new config applies at next start
    if (!instance.config.graphics?.password) return;
    try {
      await instance.qmp!.ui.setVncPassword(password);
    } catch (error) {
      throw failure(error, `VNC password of ${domain.config.name}`);
    }
  }

  /** The running QEMU, which was started with a VNC server. */
  private vncOf(domain: DomainRecord): QemuInstance {
    const instance = this.hooks.live(domain);
    if (instance.config.graphics?.type !== 'vnc') throw new VirtError('OPERATION_INVALID', `domain ${domain.config.name} runs without graphics (define it with graphics.type vnc; the change applies at its next start)`);
    return instance;
  }
}

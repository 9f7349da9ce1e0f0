import { randomBytes } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { DomainEventIds, Subjects, VirtError, type GraphicsEvent } from '@virtbus/api-contract';
import type { DomainRecord, GraphicsCapability, GraphicsSession, HypervisorDriver } from '@virtbus/drivers';
import type { Logger } from 'pino';
import { publishEnd, requireRunning } from './console-hub.js';

/** A domain's screen: one defined without a screen is refused (409, its config), a driver without screens answers 501. */
export function graphicsOf(domain: DomainRecord, driver: HypervisorDriver): GraphicsCapability {
  if (domain.config.graphics?.type !== 'vnc') throw new VirtError('OPERATION_INVALID', `domain ${domain.config.name} has no graphical console (define it with graphics.type vnc)`);
  return graphicsDriver(driver);
}

/** A driver without screens answers OPERATION_UNSUPPORTED to every graphics call (viewer writes and detaches too, whatever the domain's config now says). */
export function graphicsDriver(driver: HypervisorDriver): GraphicsCapability {
  if (!driver.graphics) throw new VirtError('OPERATION_UNSUPPORTED', `the ${driver.name} driver has no graphical console`);
  return driver.graphics;
}

/** Server bytes sent beyond the viewer's last acknowledgement before the agent stops reading QEMU's socket. */
export const GRAPHICS_WINDOW_BYTES = 2 * 1024 * 1024;
export const MAX_VIEWERS_PER_DOMAIN = 8;
/** A viewer whose gateway sent nothing (not even its keep-alive ack) for this long is gone: its session closes. */
export const VIEWER_SILENCE_MS = 120_000;
/** QEMU closes its VNC clients as it exits, just before the domain's STOPPED event: that event's reason is the better one. */
const SERVER_CLOSE_GRACE_MS = 2_000;

interface Viewer {
  readonly id: string;
  readonly uuid: string;
  readonly name: string;
  readonly subject: string;
  readonly exclusive: boolean;
  readonly session: GraphicsSession;
  sent: number;
  acked: number;
  started: boolean;
  paused: boolean;
  heardAt: number;
}

export interface GraphicsHubOptions {
  windowBytes?: number;
  silenceMs?: number;
}

/**
 * Bridges VNC viewers onto the bus. Unlike the serial console every viewer has its own connection to QEMU's VNC server
 * (RFB is per client); its server bytes go out on the viewer's own subject with a credit window, its input comes back
 * through `write`. At most one exclusive viewer, and then no other.
 */
export class GraphicsHub {
  private readonly viewers = new Map<string, Map<string, Viewer>>();
  private readonly windowBytes: number;
  private readonly silenceMs: number;
  private readonly reaper: NodeJS.Timeout;

  constructor(
    private readonly nc: NatsConnection,
    private readonly node: string,
    private readonly logger: Logger,
    options: GraphicsHubOptions = {},
  ) {
    this.windowBytes = options.windowBytes ?? GRAPHICS_WINDOW_BYTES;
    this.silenceMs = options.silenceMs ?? VIEWER_SILENCE_MS;
    this.reaper = setInterval(() => this.reap(), Math.max(1_000, this.silenceMs / 4));
    this.reaper.unref();
  }

  async attach(domain: DomainRecord, driver: HypervisorDriver, options: { exclusive: boolean; force: boolean }) {
    const graphics = graphicsOf(domain, driver);
    requireRunning(domain, 'graphical console');
    const { uuid, name } = domain.config;
    const others = [...(this.viewers.get(uuid)?.values() ?? [])];
    const blocking = options.exclusive ? others : others.filter((viewer) => viewer.exclusive);
    if (blocking.length > 0 && !options.force) {
      throw new VirtError('OPERATION_INVALID', options.exclusive ? `the screen of ${name} has other viewers; attach with force to close them` : `the screen of ${name} has an exclusive viewer; attach with force to close it`);
    }
    if (others.length - blocking.length >= MAX_VIEWERS_PER_DOMAIN) throw new VirtError('OPERATION_INVALID', `the screen of ${name} already has ${MAX_VIEWERS_PER_DOMAIN} viewers`);
    const session = await graphics.openGraphics(domain);
    for (const viewer of blocking) this.close(viewer, options.exclusive ? 'an exclusive viewer took the screen' : 'another viewer took the screen');
    const id = randomBytes(12).toString('hex');
    const viewer: Viewer = { id, uuid, name, subject: Subjects.graphicsOutput(this.node, uuid, id), exclusive: options.exclusive, session, sent: 0, acked: 0, started: false, paused: true, heardAt: Date.now() };
    session.onData((chunk) => {
      this.nc.publish(viewer.subject, chunk);
      viewer.sent += chunk.length;
      this.pace(viewer);
    });
    session.onClose(() => setTimeout(() => this.close(viewer, `the VNC server of ${name} closed the connection`), SERVER_CLOSE_GRACE_MS).unref());
    let perDomain = this.viewers.get(uuid);
    if (!perDomain) this.viewers.set(uuid, (perDomain = new Map()));
    perDomain.set(id, viewer);
    this.event(viewer, 'CONNECTED');
    this.logger.debug({ domain: name, session: id, exclusive: options.exclusive }, 'graphics viewer bridged to the bus');
    return { session: id, subject: viewer.subject, windowBytes: this.windowBytes };
  }

  /** Viewer bytes for the server and/or how many server bytes the viewer has taken (the first call starts the flow). */
  write(domain: DomainRecord, session: string, data: Buffer | undefined, ack: number | undefined): void {
    const viewer = this.viewers.get(domain.config.uuid)?.get(session);
    if (!viewer) throw new VirtError('OPERATION_INVALID', `session ${session} is not a viewer of ${domain.config.name}`);
    viewer.heardAt = Date.now();
    viewer.started = true;
    if (ack !== undefined) viewer.acked = Math.min(viewer.sent, Math.max(viewer.acked, ack));
    if (data && data.length > 0) viewer.session.write(data);
    this.pace(viewer);
  }

  detach(domain: DomainRecord, session: string): void {
    const viewer = this.viewers.get(domain.config.uuid)?.get(session);
    if (viewer) this.close(viewer);
  }

  /** The domain stopped: every viewer's session ends, and its reader is told why. */
  forget(uuid: string, why: string): void {
    for (const viewer of [...(this.viewers.get(uuid)?.values() ?? [])]) this.close(viewer, why);
  }

  closeAll(): void {
    clearInterval(this.reaper);
    for (const perDomain of [...this.viewers.values()]) for (const viewer of [...perDomain.values()]) this.close(viewer, 'the agent is stopping');
  }

  /** Reads QEMU's socket only while the viewer has credit. */
  private pace(viewer: Viewer): void {
    const open = viewer.started && viewer.sent - viewer.acked < this.windowBytes;
    if (open && viewer.paused) viewer.session.resume();
    else if (!open && !viewer.paused) viewer.session.pause();
    viewer.paused = !open;
  }

  private close(viewer: Viewer, why?: string): void {
    const perDomain = this.viewers.get(viewer.uuid);
    if (perDomain?.get(viewer.id) !== viewer) return;
    perDomain.delete(viewer.id);
    if (perDomain.size === 0) this.viewers.delete(viewer.uuid);
    viewer.session.close();
    if (why !== undefined) publishEnd(this.nc, viewer.subject, why);
    this.event(viewer, 'DISCONNECTED');
  }

  private reap(): void {
    const before = Date.now() - this.silenceMs;
    for (const perDomain of [...this.viewers.values()]) {
      for (const viewer of [...perDomain.values()]) if (viewer.heardAt < before) this.close(viewer, 'no word from the viewer');
    }
  }

  private event(viewer: Viewer, type: GraphicsEvent['type']): void {
    const event: GraphicsEvent = { kind: 'graphics', node: this.node, timestamp: new Date().toISOString(), uuid: viewer.uuid, name: viewer.name, type, session: viewer.id, exclusive: viewer.exclusive, event: 'GRAPHICS', eventId: DomainEventIds.GRAPHICS };
    try {
      this.nc.publish(Subjects.graphicsEvent(this.node, viewer.uuid, type), JSON.stringify(event));
    } catch (error) {
      this.logger.debug({ err: error }, 'graphics event not published');
    }
  }
}

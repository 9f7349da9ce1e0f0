import type { NatsConnection } from '@nats-io/transport-node';
import { ConsoleHeaders, VirtError } from '@virtbus/api-contract';
import type { DomainRecord, GraphicsSession, HypervisorDriver } from '@virtbus/drivers';
import { testDomainConfig } from '@virtbus/testing';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { GraphicsHub } from './graphics-hub.js';

/** A viewer connection whose server side the test drives: what it was sent, and whether the hub paused it. */
class ScriptedSession implements GraphicsSession {
  paused = true;
  closed = false;
  readonly written: Buffer[] = [];
  private data?: (chunk: Buffer) => void;
  private closing?: () => void;
  onData(listener: (chunk: Buffer) => void): void {
    this.data = listener;
  }
  onClose(listener: () => void): void {
    this.closing = listener;
  }
  write(data: Buffer): void {
    this.written.push(data);
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  close(): void {
    this.closed = true;
  }
  /** The server sends bytes; like a paused socket, nothing comes while paused. */
  serve(bytes: number): boolean {
    if (this.paused) return false;
    this.data?.(Buffer.alloc(bytes, 1));
    return true;
  }
  serverCloses(): void {
    this.closing?.();
  }
}

const published: { subject: string; bytes: number; end?: string }[] = [];
const nc = {
  publish: (subject: string, data: Uint8Array | string, options?: { headers?: { get(name: string): string } }) =>
    published.push({ subject, bytes: typeof data === 'string' ? data.length : data.length, ...(options?.headers ? { end: options.headers.get(ConsoleHeaders.End) } : {}) }),
} as unknown as NatsConnection;

const sessions: ScriptedSession[] = [];
const driver = {
  name: 'scripted',
  graphics: {
    openGraphics: async () => {
      const session = new ScriptedSession();
      sessions.push(session);
      return session;
    },
    screenshot: async () => Buffer.alloc(0),
    sendKey: async () => undefined,
  },
} as unknown as HypervisorDriver;

const domain: DomainRecord = { config: { ...testDomainConfig({ name: 'screen', driver: 'qemu' }), graphics: { type: 'vnc', video: 'std' } }, state: 'running', reason: 'booted' } as DomainRecord;
let hub: GraphicsHub;

afterEach(() => {
  hub?.closeAll();
  published.length = 0;
  sessions.length = 0;
});

describe('GraphicsHub', () => {
  it('sends nothing before the viewer says it listens, then at most a window beyond its acknowledgements', async () => {
    hub = new GraphicsHub(nc, 'n1', pino({ level: 'silent' }), { windowBytes: 1000 });
    const { session, subject, windowBytes } = await hub.attach(domain, driver, { exclusive: false, force: false });
    expect(windowBytes).toBe(1000);
    const server = sessions[0]!;
    expect(server.serve(10), 'paused until the first write').toBe(false);

    hub.write(domain, session, undefined, 0);
    expect(server.serve(600)).toBe(true);
    expect(server.serve(600), 'still under the window when sent').toBe(true);
    expect(server.paused, '1200 unacknowledged bytes exceed the window').toBe(true);
    expect(server.serve(1)).toBe(false);

    hub.write(domain, session, undefined, 600);
    expect(server.paused, '600 unacknowledged: below the window again').toBe(false);
    hub.write(domain, session, Buffer.from('keys'), undefined);
    expect(Buffer.concat(server.written).toString()).toBe('keys');
    expect(published.filter((message) => message.subject === subject).map((message) => message.bytes)).toEqual([600, 600]);
  });

  it('keeps one exclusive viewer alone unless forced, and tells a closed viewer why', async () => {
    hub = new GraphicsHub(nc, 'n1', pino({ level: 'silent' }));
    const first = await hub.attach(domain, driver, { exclusive: false, force: false });
    await expect(hub.attach(domain, driver, { exclusive: true, force: false })).rejects.toSatisfy((error) => VirtError.is(error) && error.code === 'OPERATION_INVALID');
    const exclusive = await hub.attach(domain, driver, { exclusive: true, force: true });
    expect(sessions[0]!.closed).toBe(true);
    expect(published.find((message) => message.subject === first.subject && message.end)?.end).toBe('an exclusive viewer took the screen');
    await expect(hub.attach(domain, driver, { exclusive: false, force: false })).rejects.toSatisfy((error) => VirtError.is(error) && error.code === 'OPERATION_INVALID');
    expect(() => hub.write(domain, first.session, undefined, 0)).toThrow(/not a viewer/);

    hub.forget(domain.config.uuid, 'domain screen stopped (destroyed)');
    expect(published.find((message) => message.subject === exclusive.subject && message.end)?.end).toBe('domain screen stopped (destroyed)');
    const events = published.filter((message) => message.subject.includes('.events.graphics.')).map((message) => message.subject.split('.').at(-1));
    expect(events).toEqual(['CONNECTED', 'DISCONNECTED', 'CONNECTED', 'DISCONNECTED']);
  });

  it('refuses domains defined without a screen, drivers without graphics and domains that do not run', async () => {
    hub = new GraphicsHub(nc, 'n1', pino({ level: 'silent' }));
    const { graphics: _screen, ...plain } = domain.config;
    await expect(hub.attach({ ...domain, config: plain } as DomainRecord, driver, { exclusive: false, force: false })).rejects.toSatisfy((error) => VirtError.is(error) && error.code === 'OPERATION_INVALID');
    await expect(hub.attach(domain, { name: 'lxc' } as HypervisorDriver, { exclusive: false, force: false })).rejects.toSatisfy((error) => VirtError.is(error) && error.code === 'OPERATION_UNSUPPORTED');
    await expect(hub.attach({ ...domain, state: 'shutoff' }, driver, { exclusive: false, force: false })).rejects.toSatisfy((error) => VirtError.is(error) && error.code === 'OPERATION_INVALID');
  });
});

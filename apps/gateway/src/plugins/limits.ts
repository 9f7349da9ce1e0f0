import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { VirtError } from '@virtbus/api-contract';
import { shared } from './skip-override.js';

/** Bounds on connections, bodies and long-lived streams; every field has a default (docs/SECURITY.md). */
export interface GatewayLimits {
  /** Open SSE streams (`/v1/events`, one JetStream consumer each) in all (default 1000). */
  maxEventStreams?: number;
  /** Open SSE streams per identity (default 20). */
  maxEventStreamsPerIdentity?: number;
  /** Open console WebSockets in all (default 200). */
  maxConsoles?: number;
  /** Open console WebSockets per identity (default 10). */
  maxConsolesPerIdentity?: number;
  /** A console with no traffic either way for this long is closed with 4408 (default 15 min; 0 = never). */
  consoleIdleTimeoutMs?: number;
  /** A JSON body must arrive within this after the headers, else 408 and the connection closes (default 30 s). */
  bodyTimeoutMs?: number;
  /** Headers must arrive within this (default 30 s). */
  headersTimeoutMs?: number;
  /** Receiving a whole request, streamed volume uploads included, may take this long (default 1 h). */
  requestTimeoutMs?: number;
  /** A socket with no traffic at all for this long is closed; longer than the longest agent call (default 62 min). */
  connectionTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this (default 72 s). */
  keepAliveTimeoutMs?: number;
  /** Once close() begins, a request whose body has not all arrived gets this long before its connection ends (default 5 s). */
  closeGraceMs?: number;
}

export const DEFAULT_LIMITS = {
  maxEventStreams: 1000,
  maxEventStreamsPerIdentity: 20,
  maxConsoles: 200,
  maxConsolesPerIdentity: 10,
  consoleIdleTimeoutMs: 15 * 60_000,
  bodyTimeoutMs: 30_000,
  headersTimeoutMs: 30_000,
  requestTimeoutMs: 60 * 60_000,
  // the longest call a handler may wait for is a 3600 s shutdown or exec plus margin
  connectionTimeoutMs: 62 * 60_000,
  keepAliveTimeoutMs: 72_000,
  closeGraceMs: 5000,
} as const satisfies Required<GatewayLimits>;

export type ResolvedLimits = Required<GatewayLimits>;

export function resolveLimits(limits: GatewayLimits = {}): ResolvedLimits {
  const resolved = { ...DEFAULT_LIMITS, ...Object.fromEntries(Object.entries(limits).filter(([, value]) => value !== undefined)) } as ResolvedLimits;
  for (const [name, value] of Object.entries(resolved)) {
    if (!Number.isInteger(value) || value < 0) throw new VirtError('INVALID_ARG', `limit ${name} must be a non-negative integer, not ${String(value)}`);
  }
  return resolved;
}

/** Which counted stream a route opens. */
export type LiveStreamKind = 'events' | 'console';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route opens a long-lived stream counted against the caps. */
    liveStream?: LiveStreamKind;
    /** The body is streamed (volume upload): only requestTimeoutMs bounds it. */
    streamingBody?: boolean;
  }
}

/** Retry-After of a refused stream: slots free when other streams end, which nothing predicts. */
const RETRY_AFTER_S = 5;

class StreamCounter {
  private total = 0;
  private readonly perIdentity = new Map<string, number>();

  constructor(
    private readonly kind: LiveStreamKind,
    private readonly max: number,
    private readonly maxPerIdentity: number,
  ) {}

  /** Takes a slot or throws RATE_LIMITED; the returned function gives it back once. */
  acquire(identity: string): () => void {
    const mine = this.perIdentity.get(identity) ?? 0;
    if (mine >= this.maxPerIdentity) throw new VirtError('RATE_LIMITED', `${identity} has ${mine} open ${this.kind} streams, the most allowed per caller`);
    if (this.total >= this.max) throw new VirtError('RATE_LIMITED', `the gateway has ${this.total} open ${this.kind} streams, the most allowed`);
    this.total += 1;
    this.perIdentity.set(identity, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total -= 1;
      const left = (this.perIdentity.get(identity) ?? 1) - 1;
      if (left > 0) this.perIdentity.set(identity, left);
      else this.perIdentity.delete(identity);
    };
  }
}

function hasBody(request: FastifyRequest): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** 408 written on the socket itself: the body parser still owns the request. */
function timeOutBody(request: FastifyRequest, reply: FastifyReply, bodyTimeoutMs: number): void {
  const socket = request.raw.socket;
  if (reply.sent || socket.destroyed) return;
  const body = JSON.stringify(new VirtError('REQUEST_TIMEOUT', `the request body did not arrive within ${Math.round(bodyTimeoutMs / 1000)} s`).toBody());
  request.log.info({ bodyTimeoutMs }, 'request body too slow; closing the connection');
  socket.end(`HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  socket.destroySoon();
}

const slots = new WeakMap<object, () => void>();

/** Gives back the stream slot an upgraded request holds (its WebSocket closed). */
export function releaseLiveStream(request: FastifyRequest): void {
  slots.get(request.raw)?.();
  slots.delete(request.raw);
}

/** Caps on SSE streams and consoles (429 + Retry-After) and the deadline of a JSON body. */
async function limitsPlugin(app: FastifyInstance, limits: ResolvedLimits): Promise<void> {
  const counters: Record<LiveStreamKind, StreamCounter> = {
    events: new StreamCounter('events', limits.maxEventStreams, limits.maxEventStreamsPerIdentity),
    console: new StreamCounter('console', limits.maxConsoles, limits.maxConsolesPerIdentity),
  };

  if (limits.bodyTimeoutMs > 0) {
    // callback hooks: they run on every request, and a promise each costs more than what they check
    app.addHook('onRequest', (request, reply, done) => {
      if (!hasBody(request) || request.routeOptions.config?.streamingBody) return done();
      const timer = setTimeout(() => timeOutBody(request, reply, limits.bodyTimeoutMs), limits.bodyTimeoutMs);
      const clear = (): void => clearTimeout(timer);
      request.raw.once('end', clear);
      request.raw.once('close', clear);
      reply.raw.once('close', clear);
      done();
    });
  }

  // close() waits for every connection: one still receiving its request (a stalled upload) gets closeGraceMs, then its socket ends
  const receiving = new Set<FastifyRequest['raw']>();
  app.addHook('onRequest', (request, _reply, done) => {
    if (request.raw.complete || !hasBody(request)) return done();
    const raw = request.raw;
    receiving.add(raw);
    raw.once('close', () => receiving.delete(raw));
    done();
  });
  let grace: NodeJS.Timeout | undefined;
  app.addHook('preClose', (done) => {
    grace = setTimeout(() => {
      for (const raw of receiving) if (!raw.complete) raw.socket.destroy();
    }, limits.closeGraceMs).unref();
    done();
  });
  app.addHook('onClose', (_instance, done) => {
    clearTimeout(grace);
    done();
  });

  // after authentication and the role check, so a refused caller holds no slot; only on live-stream routes (every other
  // request skips the hook)
  app.addHook('onRoute', (route) => {
    const kind = route.config?.liveStream;
    if (!kind) return;
    route.preHandler = [(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => takeSlot(kind, request, reply, done), ...(route.preHandler === undefined ? [] : [route.preHandler].flat())];
  });
  function takeSlot(kind: LiveStreamKind, request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    if (request.method === 'HEAD') return done();
    // a console GET without the upgrade is refused by its handler and holds nothing
    const upgrade = (request as FastifyRequest & { ws?: boolean }).ws === true;
    if (kind === 'console' && !upgrade) return done();
    let release: () => void;
    try {
      release = counters[kind].acquire(request.identity?.name ?? `ip:${request.ip}`);
    } catch (error) {
      reply.header('retry-after', String(RETRY_AFTER_S));
      return done(error as Error);
    }
    // SSE ends with its response; an upgraded socket outlives the response object
    if (!upgrade) {
      reply.raw.once('close', release);
      return done();
    }
    // the route's socket close gives the slot back; the raw socket's close too (it is absent in injected requests)
    slots.set(request.raw, release);
    (request.raw.socket as typeof request.raw.socket | undefined)?.once('close', release);
    done();
  }
}

export default shared(limitsPlugin);

import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { sendError } from './auth-plugin.js';

export interface TokenBucketOptions {
  /** Burst size. */
  capacity: number;
  refillPerSecond: number;
  /** Buckets kept at most; the least recently used go first (bounds memory under address spraying). */
  maxKeys?: number;
}

/** Classic token bucket per key; `take` answers how long to wait when empty. */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; updated: number }>();
  private readonly maxKeys: number;

  constructor(private readonly options: TokenBucketOptions) {
    if (!(options.capacity >= 1) || !(options.refillPerSecond > 0)) throw new RangeError('capacity must be >= 1 and refillPerSecond > 0');
    this.maxKeys = options.maxKeys ?? 10_000;
  }

  /** Takes one token; returns 0 when allowed, else the milliseconds until a token is available. */
  take(key: string, nowMs: number = Date.now()): number {
    const { capacity, refillPerSecond } = this.options;
    const existing = this.buckets.get(key);
    let tokens = capacity;
    if (existing) {
      tokens = Math.min(capacity, existing.tokens + ((nowMs - existing.updated) / 1000) * refillPerSecond);
      this.buckets.delete(key);
    } else if (this.buckets.size >= this.maxKeys) {
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) this.buckets.delete(oldest);
    }
    const allowed = tokens >= 1;
    this.buckets.set(key, { tokens: allowed ? tokens - 1 : tokens, updated: nowMs });
    return allowed ? 0 : Math.ceil(((1 - tokens) / refillPerSecond) * 1000);
  }

  get size(): number {
    return this.buckets.size;
  }
}

export interface RateLimitPluginOptions extends TokenBucketOptions {
  /** Defaults to the authenticated identity, else the client address. */
  key?: (request: FastifyRequest) => string;
  now?: () => number;
}

export function defaultRateLimitKey(request: FastifyRequest): string {
  const identity = (request as { identity?: { name: string } | null }).identity;
  return identity ? `id:${identity.name}` : `ip:${request.ip}`;
}

/** onRequest hook answering 429 RATE_LIMITED with Retry-After; register it after the auth plugin to limit per identity. */
export const rateLimitPlugin: FastifyPluginAsync<RateLimitPluginOptions> = async (app, options) => {
  const buckets = new TokenBuckets(options);
  const key = options.key ?? defaultRateLimitKey;
  const now = options.now ?? Date.now;
  app.addHook('onRequest', async (request, reply) => {
    const waitMs = buckets.take(key(request), now());
    if (waitMs > 0) {
      reply.header('retry-after', String(Math.ceil(waitMs / 1000)));
      return sendError(reply, 'RATE_LIMITED', `too many requests: retry in ${Math.ceil(waitMs / 1000)} s`);
    }
  });
};
(rateLimitPlugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;

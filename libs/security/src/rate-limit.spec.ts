import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { rateLimitPlugin, TokenBuckets } from './rate-limit.js';

describe('TokenBuckets', () => {
  it('allows a burst, then refills at the given rate', () => {
    const buckets = new TokenBuckets({ capacity: 2, refillPerSecond: 1 });
    expect(buckets.take('k', 0)).toBe(0);
    expect(buckets.take('k', 0)).toBe(0);
    expect(buckets.take('k', 0)).toBe(1000);
    expect(buckets.take('k', 500)).toBe(500);
    expect(buckets.take('k', 1000)).toBe(0);
    expect(buckets.take('other', 1000)).toBe(0);
  });

  it('bounds the number of keys', () => {
    const buckets = new TokenBuckets({ capacity: 1, refillPerSecond: 1, maxKeys: 3 });
    for (let i = 0; i < 10; i++) buckets.take(`ip${i}`, 0);
    expect(buckets.size).toBe(3);
  });
});

describe('rateLimitPlugin', () => {
  it('answers 429 RATE_LIMITED with Retry-After once the bucket is empty', async () => {
    let clock = 0;
    const app = Fastify();
    await app.register(rateLimitPlugin, { capacity: 2, refillPerSecond: 0.5, now: () => clock });
    app.get('/x', async () => ({ ok: true }));
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await app.inject({ method: 'GET', url: '/x' })).statusCode);
    expect(codes).toEqual([200, 200, 429]);
    const limited = await app.inject({ method: 'GET', url: '/x' });
    expect(limited.json()).toMatchObject({ code: 'RATE_LIMITED', status: 429 });
    expect(limited.headers['retry-after']).toBe('2');
    const other = await app.inject({ method: 'GET', url: '/x', remoteAddress: '127.0.0.9' });
    expect(other.statusCode).toBe(200);
    clock = 2000;
    expect((await app.inject({ method: 'GET', url: '/x' })).statusCode).toBe(200);
    await app.close();
  });
});

import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { VirtError } from '@virtbus/api-contract';
import { fingerprintOf, IdempotencyStore } from './idempotency.js';

let dir: string;
const logger = pino({ level: 'silent' });

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'virtbus-idem-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('IdempotencyStore', () => {
  it('runs a key once and answers a repeat with the first answer, also after a restart', async () => {
    const store = new IdempotencyStore({ dir, logger });
    await store.init();
    let runs = 0;
    const fp = fingerprintOf('domain.define', { name: 'a' });
    const first = await store.run('k1', 'domain.define', fp, async () => ({ uuid: `u${++runs}` }));
    const again = await store.run('k1', 'domain.define', fp, async () => ({ uuid: `u${++runs}` }));
    expect(first).toEqual({ outcome: { result: { uuid: 'u1' } }, replayed: false });
    expect(again).toEqual({ outcome: { result: { uuid: 'u1' } }, replayed: true });
    const reopened = new IdempotencyStore({ dir, logger });
    await reopened.init();
    expect(await reopened.run('k1', 'domain.define', fp, async () => ({ uuid: `u${++runs}` }))).toMatchObject({ outcome: { result: { uuid: 'u1' } }, replayed: true });
    expect(runs).toBe(1);
  });

  it('refuses the key with another request or operation, and a key order change is the same request', async () => {
    const store = new IdempotencyStore({ dir, logger });
    await store.init();
    await store.run('k', 'domain.define', fingerprintOf('domain.define', { name: 'a', vcpus: 1 }), async () => ({}));
    expect(fingerprintOf('domain.define', { vcpus: 1, name: 'a' })).toBe(fingerprintOf('domain.define', { name: 'a', vcpus: 1 }));
    await expect(store.run('k', 'domain.define', fingerprintOf('domain.define', { name: 'b' }), async () => ({}))).rejects.toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
    await expect(store.run('k', 'domain.undefine', fingerprintOf('domain.undefine', { name: 'a', vcpus: 1 }), async () => ({}))).rejects.toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
  });

  it('makes a repeat that arrives while the first runs wait for its answer', async () => {
    const store = new IdempotencyStore({ dir, logger });
    await store.init();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let runs = 0;
    const fp = fingerprintOf('domain.state', { id: 'x' });
    const first = store.run('k', 'domain.state', fp, async () => {
      runs += 1;
      await gate;
      return { state: 'running' };
    });
    const second = store.run('k', 'domain.state', fp, async () => ({ state: `again ${++runs}` }));
    release();
    expect((await first).outcome).toEqual({ result: { state: 'running' } });
    expect(await second).toEqual({ outcome: { result: { state: 'running' } }, replayed: true });
    expect(runs).toBe(1);
  });

  it('keeps client errors but forgets server errors, so a retry runs again', async () => {
    const store = new IdempotencyStore({ dir, logger });
    await store.init();
    const fp = fingerprintOf('domain.define', {});
    expect((await store.run('a', 'domain.define', fp, async () => Promise.reject(new VirtError('DOMAIN_EXISTS', 'exists')))).outcome).toMatchObject({ error: { code: 'DOMAIN_EXISTS' } });
    expect((await store.run('a', 'domain.define', fp, async () => ({ ok: 1 }))).outcome).toMatchObject({ error: { code: 'DOMAIN_EXISTS' } });
    expect((await store.run('b', 'domain.define', fp, async () => Promise.reject(new VirtError('STORAGE_FULL', 'full')))).outcome).toMatchObject({ error: { code: 'STORAGE_FULL' } });
    expect((await store.run('b', 'domain.define', fp, async () => ({ ok: 2 }))).outcome).toEqual({ result: { ok: 2 } });
  });

  it('bounds keys by count and bytes and prunes expired ones, files included', async () => {
    let now = 1_000_000;
    const store = new IdempotencyStore({ dir, logger, maxEntries: 3, maxBytes: 100_000, ttlMs: 1000, now: () => now });
    await store.init();
    for (const key of ['a', 'b', 'c', 'd']) await store.run(key, 'domain.define', fingerprintOf('domain.define', { key }), async () => ({ key }));
    expect(store.size).toBe(3);
    expect((await readdir(dir)).filter((name) => name.endsWith('.json'))).toHaveLength(3);
    let runs = 0;
    await store.run('a', 'domain.define', fingerprintOf('domain.define', { key: 'a' }), async () => ({ run: ++runs }));
    expect(runs).toBe(1);
    now += 5000;
    const big = 'x'.repeat(60_000);
    await store.run('e', 'domain.define', fingerprintOf('domain.define', { key: 'e' }), async () => ({ big }));
    expect(store.size).toBe(1);
    await store.run('f', 'domain.define', fingerprintOf('domain.define', { key: 'f' }), async () => ({ big }));
    expect(store.size).toBe(1);
    expect((await readdir(dir)).filter((name) => name.endsWith('.json'))).toHaveLength(1);
    const reopened = new IdempotencyStore({ dir, logger, maxEntries: 3, maxBytes: 100_000, ttlMs: 1000, now: () => now + 5000 });
    await reopened.init();
    expect(reopened.size).toBe(0);
    expect(await readdir(dir)).toEqual([]);
  });
});

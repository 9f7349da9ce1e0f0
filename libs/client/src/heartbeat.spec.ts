import { setTimeout as sleep } from 'node:timers/promises';
import type { KV } from '@nats-io/kv';
import type { NodeRecord } from '@virtbus/api-contract';
import { describe, expect, it } from 'vitest';
import { NUDGE_SPACING_MS, startHeartbeat } from './node-registry.js';

/** A registry bucket that only records what was put, and when. */
function recordingKv(): { kv: KV; puts: { at: number; record: NodeRecord }[] } {
  const puts: { at: number; record: NodeRecord }[] = [];
  const kv = { put: async (_key: string, value: string) => void puts.push({ at: Date.now(), record: JSON.parse(value) as NodeRecord }) } as unknown as KV;
  return { kv, puts };
}

describe('the node heartbeat', () => {
  it('writes a changed record soon after a nudge, a burst of nudges as one write a second, not waiting for its interval', async () => {
    const { kv, puts } = recordingKv();
    let total = 0;
    const started = Date.now();
    const heartbeat = startHeartbeat({ kv, node: 'n1', intervalMs: 60_000, record: () => ({ node: 'n1', version: '1', registeredAt: new Date(started).toISOString(), domains: { total, running: 0 } }) });
    try {
      total = 1;
      heartbeat.nudge();
      await expect.poll(() => puts.length, { timeout: NUDGE_SPACING_MS * 3 }).toBe(1);
      expect(puts[0]!.record.domains).toEqual({ total: 1, running: 0 });
      for (total = 2; total <= 20; total++) heartbeat.nudge();
      await expect.poll(() => puts.length, { timeout: NUDGE_SPACING_MS * 3 }).toBe(2);
      expect(puts[1]!.at - puts[0]!.at).toBeGreaterThanOrEqual(NUDGE_SPACING_MS - 5);
      expect(puts[1]!.record.domains?.total).toBe(21);
      await sleep(NUDGE_SPACING_MS * 1.5);
      expect(puts).toHaveLength(2);
    } finally {
      await heartbeat.stop({ markStopped: false });
    }
  });
});

describe('the node heartbeat while the registry is unwritable', () => {
  it('spaces nudged writes by its interval after a failed write, not by the nudge spacing', async () => {
    const attempts: number[] = [];
    const kv = { put: async () => { attempts.push(Date.now()); throw new Error('JetStream not available'); } } as unknown as KV;
    const intervalMs = NUDGE_SPACING_MS * 2;
    const heartbeat = startHeartbeat({ kv, node: 'n1', intervalMs, record: () => ({ node: 'n1', version: '1', registeredAt: new Date().toISOString() }) });
    // lifecycle events keep coming during the outage
    const events = setInterval(() => heartbeat.nudge(), 50);
    try {
      await expect.poll(() => attempts.length, { timeout: intervalMs * 4 }).toBeGreaterThanOrEqual(2);
      expect(attempts[1]! - attempts[0]!).toBeGreaterThanOrEqual(intervalMs - 5);
    } finally {
      clearInterval(events);
      await heartbeat.stop({ markStopped: false });
    }
  });
});

import { appendFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventLog, type DomainChange } from './log.js';

interface TestEvent {
  seq: number;
  uuid: string;
  note: string;
}

const logger = pino({ level: 'silent' });
let root: string;
let dir: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'virtbus-log-'));
  dir = join(root, 'events');
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const open = (options: { segmentBytes?: number; legacy?: boolean } = {}) =>
  EventLog.open<TestEvent>({
    dir,
    logger,
    checkpointMs: 5,
    ...(options.segmentBytes ? { segmentBytes: options.segmentBytes } : {}),
    ...(options.legacy ? { legacyOutboxPath: join(root, 'events-outbox.json') } : {}),
  });

function append(log: EventLog<TestEvent>, uuid: string, note: string, domain?: DomainChange) {
  return log.append((seq) => ({ seq, uuid, note }), domain);
}

const segments = async () => (await readdir(dir)).filter((name) => name.endsWith('.jsonl')).sort();

describe('EventLog', () => {
  it('numbers appends without gaps and shares one write and fsync among appends that arrive together', async () => {
    const log = await open();
    const appended = Array.from({ length: 200 }, (_, index) => append(log, `d${index % 16}`, `n${index}`));
    await Promise.all(appended.map((entry) => entry.durable));
    expect(appended.map((entry) => entry.event.seq)).toEqual(Array.from({ length: 200 }, (_, index) => index + 1));
    expect(log.durableSeq).toBe(200);
    // The first append starts a write; the other 199 arrive while it runs and share the next one.
    expect(log.commitCount).toBeLessThanOrEqual(2);
    await log.close();

    const again = await open();
    expect(again.lastSeq).toBe(200);
    expect(again.pendingCount).toBe(200);
    expect(again.eventAt(7)).toEqual({ seq: 7, uuid: 'd6', note: 'n6' });
    expect(append(again, 'd0', 'next').event.seq).toBe(201);
    await again.close();
  });

  it('drops a torn last line at open (its append never returned) and continues the sequence after the last whole line', async () => {
    const log = await open();
    await Promise.all([1, 2, 3].map((index) => append(log, 'a', `n${index}`, { uuid: 'a', name: 'a', state: 'running' }).durable));
    await log.close();
    const [active] = await segments();
    await appendFile(join(dir, active!), '{"event":{"seq":4,"uuid":"a","no');

    const reopened = await open();
    expect(reopened.lastSeq).toBe(3);
    expect(reopened.pendingCount).toBe(3);
    expect((await readFile(join(dir, active!), 'utf8')).endsWith('"n3"},"domain":{"uuid":"a","name":"a","state":"running"}}\n')).toBe(true);
    await append(reopened, 'a', 'n4').durable;
    await reopened.close();
    const inspected = await EventLog.inspect<TestEvent>(dir);
    expect(inspected.pending.map((event) => event.seq)).toEqual([1, 2, 3, 4]);
  });

  it('refuses a log damaged before its last line', async () => {
    const log = await open();
    await Promise.all([1, 2].map((index) => append(log, 'a', `n${index}`).durable));
    await log.close();
    const [active] = await segments();
    const text = await readFile(join(dir, active!), 'utf8');
    await writeFile(join(dir, active!), `{"broken\n${text}`);
    await expect(open()).rejects.toThrow(/damaged/);
  });

  it('drops acknowledged segments once a domain snapshot covers them, and keeps the recorded domain states', async () => {
    const log = await open({ segmentBytes: 256 });
    await log.seedDomains(new Map());
    for (let index = 0; index < 40; index++) {
      const uuid = `dom-${index % 5}`;
      const domain: DomainChange = index >= 35 && index % 5 === 0 ? { uuid, removed: true } : { uuid, name: `name-${index % 5}`, state: index % 2 ? 'running' : 'shutoff' };
      await append(log, uuid, `n${index}`, domain).durable;
    }
    const before = (await segments()).length;
    expect(before).toBeGreaterThan(5);
    log.ack(30);
    await log.close();
    const after = await segments();
    expect(after.length).toBeLessThan(before);
    // Nothing unacknowledged was dropped.
    expect(Number(after[0]!.slice(0, 16))).toBeLessThanOrEqual(31);

    const reopened = await open({ segmentBytes: 256 });
    expect(reopened.lastSeq).toBe(40);
    expect(reopened.ackedSeq).toBe(30);
    expect(reopened.pendingCount).toBe(10);
    expect(reopened.eventAt(31)?.note).toBe('n30');
    expect(Object.fromEntries(reopened.recordedDomains()!)).toEqual({
      'dom-1': { name: 'name-1', state: 'shutoff' },
      'dom-2': { name: 'name-2', state: 'running' },
      'dom-3': { name: 'name-3', state: 'shutoff' },
      'dom-4': { name: 'name-4', state: 'running' },
    });
    reopened.ack(40);
    await reopened.close();
    // everything acknowledged at close: the snapshot covers every record and no segment is left to replay
    expect((await segments()).length).toBe(0);
    const last = await open({ segmentBytes: 256 });
    expect(last.lastSeq).toBe(40);
    expect(last.pendingCount).toBe(0);
    expect(append(last, 'x', 'after').event.seq).toBe(41);
    expect(last.recordedDomains()?.size).toBe(4);
    await last.close();
  });

  it('upgrades an old events-outbox.json: its pending events stay pending, its lastSeq and domains continue', async () => {
    const legacy = {
      lastSeq: 7,
      pending: [
        { seq: 6, uuid: 'a', note: 'six' },
        { seq: 7, uuid: 'b', note: 'seven' },
      ],
      domains: { a: { name: 'alpha', state: 'running' }, b: { name: 'beta', state: 'shutoff' } },
    };
    await writeFile(join(root, 'events-outbox.json'), JSON.stringify(legacy, null, 2));
    const log = await open({ legacy: true });
    expect(log.lastSeq).toBe(7);
    expect(log.ackedSeq).toBe(5);
    expect([log.eventAt(6), log.eventAt(7)]).toEqual(legacy.pending);
    expect(Object.fromEntries(log.recordedDomains()!)).toEqual(legacy.domains);
    await expect(readFile(join(root, 'events-outbox.json'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(append(log, 'c', 'eight', { uuid: 'c', name: 'gamma', state: 'shutoff' }).event.seq).toBe(8);
    await log.close();

    const reopened = await open({ legacy: true });
    expect(reopened.lastSeq).toBe(8);
    expect(reopened.pendingCount).toBe(3);
    expect(reopened.recordedDomains()?.get('c')).toEqual({ name: 'gamma', state: 'shutoff' });
    await reopened.close();
  });

  it('upgrades an old outbox without a domain record as a log without one (the manager seeds it)', async () => {
    await writeFile(join(root, 'events-outbox.json'), JSON.stringify({ lastSeq: 3, pending: [] }));
    const log = await open({ legacy: true });
    expect(log.lastSeq).toBe(3);
    expect(log.pendingCount).toBe(0);
    expect(log.recordedDomains()).toBeUndefined();
    await log.seedDomains(new Map([['a', { name: 'alpha', state: 'shutoff' }]]));
    await log.close();
    const reopened = await open({ legacy: true });
    expect(reopened.recordedDomains()?.get('a')).toEqual({ name: 'alpha', state: 'shutoff' });
    expect(append(reopened, 'a', 'four').event.seq).toBe(4);
    await reopened.close();
  });

  it('keeps definitions for the records after the last snapshot, and runs the before-snapshot hook before a snapshot lets records go', async () => {
    const log = await open({ segmentBytes: 200 });
    const order: string[] = [];
    log.setBeforeSnapshot(async () => {
      order.push('hook');
    });
    const domain = (uuid: string): DomainChange => ({ uuid, name: uuid, state: 'shutoff', reason: 'unknown' });
    await log.append((seq) => ({ seq, uuid: 'a', note: 'defined' }), domain('a'), { config: { uuid: 'a' } }).durable;
    await log.append((seq) => ({ seq, uuid: 'b', note: 'defined' }), domain('b'), { config: { uuid: 'b' } }).durable;
    await log.append((seq) => ({ seq, uuid: 'b', note: 'gone' }), { uuid: 'b', removed: true }).durable;
    // the recorded state never holds a definition: they cost memory only in the log file
    expect(log.recordedDomains()?.get('a')).toEqual({ name: 'a', state: 'shutoff', reason: 'unknown' });
    await log.close();

    const again = await open({ segmentBytes: 200 });
    expect([...again.takeDefinitions()]).toEqual([['a', { config: { uuid: 'a' } }]]);
    expect(again.takeDefinitions().size).toBe(0);
    again.setBeforeSnapshot(async () => {
      order.push('hook');
    });
    // acknowledged and sealed: a checkpoint writes a snapshot (after the hook) and drops the segments it covers
    for (let index = 0; index < 6; index++) await append(again, 'c', `n${index}`).durable;
    again.ack(again.durableSeq);
    await again.close();
    expect(order.length).toBeGreaterThan(0);
    const third = await open({ segmentBytes: 200 });
    expect(third.takeDefinitions().size).toBe(0);
    await third.close();
  });
});

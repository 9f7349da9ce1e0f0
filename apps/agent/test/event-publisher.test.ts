import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { EVENTS_STREAM, EventTimeHeaders, Subjects } from '@virtbus/api-contract';
import { type NatsServerHandle, startNatsServer, tearDown } from '@virtbus/testing';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { EventPublisher } from '../src/events/publisher.js';

const logger = pino({ level: 'silent' });
let workDir: string;
let storeDir: string;
let nats: NatsServerHandle;
let reader: NatsConnection;

/** Node seqs in the VIRT_EVENTS stream, in stream order. */
async function storedSeqs(node: string): Promise<number[]> {
  const jsm = await jetstreamManager(reader);
  const info = await jsm.streams.info(EVENTS_STREAM);
  const seqs: number[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const event = (await jsm.streams.getMessage(EVENTS_STREAM, { seq }))?.json<{ node: string; seq: number }>();
    if (event?.node === node) seqs.push(event.seq);
  }
  return seqs;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, index) => from + index);

async function startPublisher(node: string): Promise<{ publisher: EventPublisher; nc: NatsConnection }> {
  const nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  const publisher = new EventPublisher(nc, node, join(workDir, node), logger);
  await publisher.init();
  return { publisher, nc };
}

function burst(publisher: EventPublisher, count: number) {
  return Promise.all(
    Array.from({ length: count }, (_, index) =>
      index % 5 === 0
        ? publisher.emitPool({ uuid: '11111111-1111-4111-8111-111111111111', name: 'default' }, 'STARTED', 'running')
        : publisher.emit({ uuid: `00000000-0000-4000-8000-${String(index % 16).padStart(12, '0')}`, name: `d${index % 16}` }, { type: 'STARTED', detail: 'BOOTED' }, 'running', 'booted'),
    ),
  );
}

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'virtbus-publisher-'));
  storeDir = join(workDir, 'js');
  nats = await startNatsServer({ storeDir });
  reader = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
});

afterAll(() => tearDown(reader, nats, workDir));

describe('EventPublisher over a real nats-server', () => {
  it('publishes a burst of concurrent emits with many in flight, stored once each in seq order', async () => {
    const { publisher, nc } = await startPublisher('pipe');
    let published = 0;
    publisher.onPublished(() => published++);
    const events = await burst(publisher, 1200);
    expect(events.map((event) => event.seq).sort((a, b) => a - b)).toEqual(range(1, 1200));
    expect(await publisher.drain(30_000)).toBe(true);
    expect(published).toBe(1200);
    await publisher.close();
    await nc.close();
    expect(await storedSeqs('pipe')).toEqual(range(1, 1200));

    // A new publisher on the same state continues the sequence.
    const again = await startPublisher('pipe');
    const [next] = await burst(again.publisher, 1);
    expect(next!.seq).toBe(1201);
    expect(await again.publisher.drain(10_000)).toBe(true);
    await again.publisher.close();
    await again.nc.close();
  });

  it('stamps each published event with its emit and publish times in microseconds, emit ≤ publish, both within the event timestamp ms', async () => {
    const { publisher, nc } = await startPublisher('stamps');
    const seen: { emitted: number; published: number; timestamp: string }[] = [];
    const sub = reader.subscribe(Subjects.nodeEvents('stamps'), {
      callback: (_error, msg) => void seen.push({ emitted: Number(msg.headers?.get(EventTimeHeaders.emitted)), published: Number(msg.headers?.get(EventTimeHeaders.published)), timestamp: msg.json<{ timestamp: string }>().timestamp }),
    });
    await reader.flush();
    await burst(publisher, 10);
    expect(await publisher.drain(10_000)).toBe(true);
    await reader.flush();
    sub.unsubscribe();
    await publisher.close();
    await nc.close();
    expect(seen).toHaveLength(10);
    for (const { emitted, published, timestamp } of seen) {
      expect(Number.isInteger(emitted) && Number.isInteger(published)).toBe(true);
      expect(published).toBeGreaterThanOrEqual(emitted);
      expect(Math.floor(emitted / 1000)).toBe(Date.parse(timestamp));
    }
  });

  it('keeps an event JetStream refuses (an error ack) and sends it again until the stream takes it, stored once in order', async () => {
    const { publisher, nc } = await startPublisher('refused');
    const jsm = await jetstreamManager(reader);
    // every event is larger than this: each publish is answered with an error instead of an ack
    await jsm.streams.update(EVENTS_STREAM, { max_msg_size: 16 });
    try {
      let failures = 0;
      publisher.onPublishFailure(() => failures++);
      await burst(publisher, 3);
      await vi.waitFor(() => expect(failures).toBeGreaterThan(0), { timeout: 10_000 });
      expect(publisher.pendingCount).toBe(3);
      expect(await storedSeqs('refused')).toEqual([]);
    } finally {
      await jsm.streams.update(EVENTS_STREAM, { max_msg_size: -1 });
    }
    expect(await publisher.drain(30_000)).toBe(true);
    await publisher.close();
    await nc.close();
    expect(await storedSeqs('refused')).toEqual(range(1, 3));
  });

  it('keeps an event nats.js refuses to send (its connection closed) pending, and goes on', async () => {
    const { publisher, nc } = await startPublisher('closed');
    let failures = 0;
    publisher.onPublishFailure(() => failures++);
    await nc.close();
    await burst(publisher, 2);
    await vi.waitFor(() => expect(failures).toBeGreaterThan(0), { timeout: 10_000 });
    expect(publisher.pendingCount).toBe(2);
    await publisher.close();
  });

  it('sends again from the first unacknowledged event after nats-server dies mid-burst: every event stored once, in order', async () => {
    const { publisher, nc } = await startPublisher('outage');
    let failures = 0;
    publisher.onPublishFailure(() => failures++);
    const first = await burst(publisher, 800);
    const second = burst(publisher, 800);
    process.kill(nats.pid, 'SIGKILL');
    await second;
    await sleep(1000);
    nats = await startNatsServer({ port: nats.port, storeDir });
    expect(await publisher.drain(60_000)).toBe(true);
    expect(failures).toBeGreaterThan(0);
    await publisher.close();
    await nc.close();
    expect(first.length).toBe(800);
    // the reader's own reconnect to the restarted server may still be under way once the publisher has drained
    const seqs = await vi.waitFor(() => storedSeqs('outage'), { timeout: 30_000, interval: 200 });
    console.info(`publisher outage: ${failures} failed publishes retried, ${seqs.length} events stored`);
    expect(seqs).toEqual(range(1, 1600));
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request as httpRequest } from 'node:http';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { EVENTS_STREAM, sseMessages, Subjects, type LifecycleEvent, type LifecycleType } from '@virtbus/api-contract';
import { tearDown, useNatsBus } from '@virtbus/testing';
import { startGateway, type RunningGateway } from '../src/index.js';

const UUID_A = '11111111-1111-4111-8111-111111111111';
const UUID_B = '22222222-2222-4222-8222-222222222222';

const bus = useNatsBus();
let jsm: JetStreamManager;
let gateway: RunningGateway;
let nodeSeq = 0;

function event(node: string, uuid: string, type: LifecycleType): LifecycleEvent {
  nodeSeq += 1;
  const stopped = type === 'STOPPED';
  return {
    kind: 'domain.lifecycle',
    node,
    seq: nodeSeq,
    timestamp: new Date().toISOString(),
    uuid,
    name: uuid === UUID_A ? 'a' : 'b',
    type,
    detail: stopped ? 'SHUTDOWN' : 'BOOTED',
    state: stopped ? 'shutoff' : 'running',
    reason: stopped ? 'shutdown' : 'booted',
  };
}

async function publish(e: LifecycleEvent): Promise<number> {
  const ack = await jetstream(bus.nc).publish(Subjects.domainEvent(e.node, e.uuid, e.type), JSON.stringify(e));
  return ack.seq;
}

interface EventMessage {
  id: string;
  event: string;
  data: LifecycleEvent;
}

/** Reads SSE messages until `count` arrived (or the stream ends), then disconnects. */
async function readEvents(
  path: string,
  count: number,
  options: { headers?: Record<string, string>; onOpen?: () => Promise<void> } = {},
): Promise<{ messages: EventMessage[]; comments: string[] }> {
  const controller = new AbortController();
  const response = await fetch(`${gateway.url}${path}`, { headers: options.headers ?? {}, signal: controller.signal });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toContain('text/event-stream');
  const messages: EventMessage[] = [];
  const comments: string[] = [];
  let opened = false;
  try {
    for await (const message of sseMessages(response.body!)) {
      comments.push(...message.comments);
      if (message.data !== undefined) messages.push({ id: message.id!, event: message.event!, data: JSON.parse(message.data) as LifecycleEvent });
      // the stream opens with a comment block, so this runs once the gateway is subscribed
      if (!opened && options.onOpen) {
        opened = true;
        await options.onOpen();
      }
      if (messages.length >= count) break;
    }
  } finally {
    controller.abort();
  }
  return { messages, comments };
}

async function consumerCount(): Promise<number> {
  return (await jsm.streams.info(EVENTS_STREAM)).state.consumer_count;
}

async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  // 20 s: a loaded machine; the loop ends as soon as the check holds
  for (let attempt = 0; attempt < 400; attempt++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Raw HTTP so the path reaches the server exactly as written (fetch would normalise `%2E%2E`). */
function rawGet(path: string): Promise<{ status: number; body: string }> {
  const url = new URL(gateway.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  jsm = await jetstreamManager(bus.nc);
  await jsm.streams.add({ name: EVENTS_STREAM, subjects: [Subjects.allEvents] });
  gateway = await startGateway({ nc: bus.nc, port: 0, heartbeatMs: 200 });
  await publish(event('host1', UUID_A, 'STARTED'));
  await publish(event('host1', UUID_B, 'STARTED'));
  await publish(event('host2', UUID_A, 'STARTED'));
  await publish(event('host1', UUID_A, 'STOPPED'));
  await publish(event('host2', UUID_B, 'STOPPED'));
});

afterAll(() => tearDown(gateway));

describe('GET /v1/events', () => {
  it('replays the stream in order from since=0 with ids and event names', async () => {
    const { messages } = await readEvents('/v1/events?since=0', 5);
    expect(messages.map((m) => m.id)).toEqual(['1', '2', '3', '4', '5']);
    expect(new Set(messages.map((m) => m.event))).toEqual(new Set(['lifecycle']));
    expect(messages.map((m) => [m.data.node, m.data.uuid, m.data.type])).toEqual([
      ['host1', UUID_A, 'STARTED'],
      ['host1', UUID_B, 'STARTED'],
      ['host2', UUID_A, 'STARTED'],
      ['host1', UUID_A, 'STOPPED'],
      ['host2', UUID_B, 'STOPPED'],
    ]);
  });

  it('filters by node, domain uuid and type', async () => {
    const byNode = await readEvents('/v1/events?since=0&node=host2', 2);
    expect(byNode.messages.map((m) => m.id)).toEqual(['3', '5']);
    const byDomain = await readEvents(`/v1/events?since=0&domain=${UUID_A}`, 3);
    expect(byDomain.messages.map((m) => m.id)).toEqual(['1', '3', '4']);
    const byAll = await readEvents(`/v1/events?since=0&node=host1&domain=${UUID_A}&type=STOPPED`, 1);
    expect(byAll.messages.map((m) => m.id)).toEqual(['4']);
  });

  it('resumes after since and after the Last-Event-ID header', async () => {
    const fromSince = await readEvents('/v1/events?since=2', 3);
    expect(fromSince.messages.map((m) => m.id)).toEqual(['3', '4', '5']);
    const fromHeader = await readEvents('/v1/events', 2, { headers: { 'last-event-id': '3' } });
    expect(fromHeader.messages.map((m) => m.id)).toEqual(['4', '5']);
  });

  it('sends only new events without a resume point, with heartbeats, and removes its consumer on disconnect', async () => {
    let published = 0;
    const { messages, comments } = await readEvents('/v1/events?type=CRASHED', 1, {
      onOpen: async () => {
        expect(await consumerCount()).toBe(1);
        published = await publish(event('host1', UUID_B, 'CRASHED'));
      },
    });
    expect(messages.map((m) => Number(m.id))).toEqual([published]);
    expect(messages[0]?.data.type).toBe('CRASHED');
    expect(comments.length).toBeGreaterThanOrEqual(1);
    await eventually(async () => (await consumerCount()) === 0, 'the consumer to be deleted');
    await eventually(async () => gateway.app.liveStreams.size === 0, 'the stream to be released');
  });

  it('streams pool and operation events by kind, every family with kind=all, domain events by default', async () => {
    const last = (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
    const poolEvent = { kind: 'pool.lifecycle', node: 'host1', seq: 1, timestamp: new Date().toISOString(), uuid: UUID_B, name: 'images', type: 'STARTED', state: 'running' };
    await jetstream(bus.nc).publish(Subjects.poolEvent('host1', 'images', 'STARTED'), JSON.stringify(poolEvent));
    const operationEvent = { kind: 'operation', node: 'host2', timestamp: new Date().toISOString(), operation: { id: 'op1' } };
    await jetstream(bus.nc).publish(Subjects.operationEvent('host2', 'op1'), JSON.stringify(operationEvent));
    const closing = await publish(event('host1', UUID_A, 'STARTED'));

    const pools = await readEvents(`/v1/events?since=${last}&kind=pool`, 1);
    expect(pools.messages.map((m) => [m.event, (m.data as unknown as typeof poolEvent).name])).toEqual([['pool.lifecycle', 'images']]);
    const operations = await readEvents(`/v1/events?since=${last}&kind=operation&node=host2`, 1);
    expect(operations.messages.map((m) => m.event)).toEqual(['operation']);
    const all = await readEvents(`/v1/events?since=${last}&kind=all`, 3);
    expect(all.messages.map((m) => m.event)).toEqual(['pool.lifecycle', 'operation', 'lifecycle']);
    const domains = await readEvents(`/v1/events?since=${last}`, 1);
    expect(domains.messages.map((m) => Number(m.id))).toEqual([closing]);

    const mixed = await fetch(`${gateway.url}/v1/events?kind=pool&domain=${UUID_A}`);
    expect(mixed.status).toBe(400);
    expect(await mixed.json()).toMatchObject({ code: 'INVALID_ARG' });
  });

  it('rejects a bad Last-Event-ID', async () => {
    const response = await fetch(`${gateway.url}/v1/events`, { headers: { 'last-event-id': 'abc' } });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ code: 'INVALID_ARG' });
  });

  it('rejects path segments that decode to .. over real HTTP', async () => {
    const response = await rawGet('/v1/nodes/host1/domains/%2E%2E');
    expect(response.status).toBe(400);
    expect(JSON.parse(response.body)).toMatchObject({ code: 'INVALID_ARG' });
  });
});

describe('graceful close', () => {
  it('ends open event streams when the gateway closes', async () => {
    const second = await startGateway({ nc: bus.nc, port: 0 });
    const response = await fetch(`${second.url}/v1/events?since=0`);
    const reader = response.body!.getReader();
    await reader.read();
    expect(second.app.liveStreams.size).toBe(1);
    await second.close();
    let done = false;
    while (!done) ({ done } = await reader.read());
    expect(done).toBe(true);
  });
});

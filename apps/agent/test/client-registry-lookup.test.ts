import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { NODES_BUCKET } from '@virtbus/api-contract';
import { rejectsWith, startNatsServer, type NatsServerHandle } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtClient } from '@virtbus/client';

let nats: NatsServerHandle;
let nc: NatsConnection;

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
  // the bucket as an agent creates it, with one node that registered and is not serving now
  const kv = await new Kvm(nc).create(NODES_BUCKET, { history: 1 });
  await kv.put('gone', JSON.stringify({ node: 'gone' }));
});

afterAll(async () => {
  await nc.close();
  await nats.stop();
});

describe('VirtClient node lookup after no responders', () => {
  // Debian's nats-server 2.9.10 panics (nil store in jsMsgGetRequest) on a STREAM.MSG.GET that races the bucket's
  // creation by a starting agent; a direct get is only answered once the stream is set up
  it('reads the node registry with direct gets, never with STREAM.MSG.GET', async () => {
    const seen: string[] = [];
    const watch = await connect({ servers: nats.url });
    const sub = watch.subscribe('$JS.API.>', { callback: (_error, msg) => void seen.push(msg.subject) });
    await watch.flush();
    const client = new VirtClient(nc);
    await rejectsWith(client.call('ghost', 'node.info', {}, { timeoutMs: 1000 }), 'NO_NODE');
    await rejectsWith(client.call('gone', 'node.info', {}, { timeoutMs: 1000 }), 'AGENT_UNREACHABLE');
    await watch.flush();
    sub.unsubscribe();
    await watch.close();
    expect(seen.filter((subject) => subject.startsWith('$JS.API.STREAM.MSG.GET.'))).toEqual([]);
    expect(seen.filter((subject) => subject.startsWith('$JS.API.DIRECT.GET.')).length).toBeGreaterThanOrEqual(2);
  });
});

describe('VirtClient node lookup before any agent registered', () => {
  it('answers NO_NODE (a direct get on a missing bucket would only time out)', async () => {
    const empty = await startNatsServer();
    const client = await connect({ servers: empty.url });
    try {
      await rejectsWith(new VirtClient(client).call('ghost', 'node.info', {}, { timeoutMs: 1000 }), 'NO_NODE');
    } finally {
      await client.close();
      await empty.stop();
    }
  });
});

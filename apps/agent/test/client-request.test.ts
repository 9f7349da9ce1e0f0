import { connect, type NatsConnection } from '@nats-io/transport-node';
import { VirtError } from '@virtbus/api-contract';
import { startNatsServer, type NatsServerHandle } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, serve } from '@virtbus/client';

let nats: NatsServerHandle;
let server: NatsConnection;

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: false });
  server = await connect({ servers: nats.url });
  // answers after a delay given in the request, so concurrent calls come back out of order
  serve(server, 'rpc.echo', async (msg) => {
    const { value, delayMs } = msg.json<{ value: number; delayMs: number }>();
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    return { value, inbox: msg.reply?.split('.').slice(0, 2).join('.') };
  });
  serve(server, 'rpc.fail', async () => {
    throw new VirtError('NOT_FOUND', 'no such thing');
  });
  await server.flush();
});

afterAll(async () => {
  await server.close();
  await nats.stop();
});

describe('request (one reply inbox per connection)', () => {
  it('matches each reply to its call when many are out at once and they come back out of order', async () => {
    const nc = await connect({ servers: nats.url });
    const values = Array.from({ length: 50 }, (_, index) => index);
    const results = await Promise.all(values.map((value) => request(nc, 'rpc.echo', { value, delayMs: (50 - value) % 7 }, { timeoutMs: 5000, callee: 'echo' })));
    expect(results.map((result) => (result as { value: number }).value)).toEqual(values);
    await nc.close();
  });

  it("replies under the connection's own inbox prefix (the one bus permissions allow)", async () => {
    const nc = await connect({ servers: nats.url, inboxPrefix: '_INBOX.rpctest' });
    expect(await request(nc, 'rpc.echo', { value: 1, delayMs: 0 }, { timeoutMs: 5000, callee: 'echo' })).toEqual({ value: 1, inbox: '_INBOX.rpctest' });
    await nc.close();
  });

  it('maps no responder, no answer in time, an error reply and a closed connection to their VirtErrors', async () => {
    const nc = await connect({ servers: nats.url });
    await expect(request(nc, 'rpc.nobody', {}, { timeoutMs: 5000, callee: 'nobody' })).rejects.toMatchObject({ code: 'AGENT_UNREACHABLE' });
    await expect(request(nc, 'rpc.echo', { value: 1, delayMs: 500 }, { timeoutMs: 50, callee: 'slow' })).rejects.toMatchObject({ code: 'OPERATION_TIMEOUT' });
    await expect(request(nc, 'rpc.fail', {}, { timeoutMs: 5000, callee: 'fail' })).rejects.toMatchObject({ code: 'NOT_FOUND', message: 'no such thing' });
    const custom = await request(nc, 'rpc.nobody', {}, { timeoutMs: 5000, callee: 'nobody', noResponders: (error) => new VirtError('NO_NODE', 'gone', { cause: error }) }).catch((error: unknown) => error);
    expect(custom).toMatchObject({ code: 'NO_NODE' });
    expect(((custom as VirtError).cause as { isNoResponders(): boolean }).isNoResponders()).toBe(true);
    // a call still out when the connection closes fails at once, not at its timeout
    const pending = request(nc, 'rpc.echo', { value: 1, delayMs: 2000 }, { timeoutMs: 60_000, callee: 'echo' });
    await new Promise((resolve) => setTimeout(resolve, 20));
    await nc.close();
    await expect(pending).rejects.toMatchObject({ code: 'AGENT_UNREACHABLE' });
    await expect(request(nc, 'rpc.echo', { value: 1, delayMs: 0 }, { timeoutMs: 5000, callee: 'echo' })).rejects.toMatchObject({ code: 'AGENT_UNREACHABLE' });
  });
});

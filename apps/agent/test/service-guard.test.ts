import type { Service } from '@nats-io/services';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { VirtError } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { type NatsServerHandle, startNatsServer, tearDown } from '@virtbus/testing';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveOperations, type OperationHandlers } from '../src/service.js';

const MAX_PAYLOAD = 32 * 1024;
let nats: NatsServerHandle;
let agentSide: NatsConnection;
let callerSide: NatsConnection;
let service: Service;
let client: VirtClient;
const results: [string, string][] = [];
let infoSize = 10;

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: false, config: `max_payload: ${MAX_PAYLOAD}` });
  agentSide = await connect({ servers: nats.url });
  callerSide = await connect({ servers: nats.url });
  client = new VirtClient(callerSide);
  // only the operations this test calls; the others are never reached
  const handlers = {
    'node.info': async () => ({ node: 'x'.repeat(infoSize) }),
    'node.stats': async () => ({ cpu: 10n }),
  } as unknown as OperationHandlers;
  service = await serveOperations({
    nc: agentSide,
    node: 'guard',
    version: '0.0.1',
    handlers,
    logger: pino({ level: 'silent' }),
    onResult: (operation, code) => results.push([operation, code]),
  });
});

afterAll(() => tearDown(service, agentSide, callerSide, nats));

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (error: unknown) => error,
  );
}

describe('serveOperations answers from the moment it resolves', () => {
  it('a call from another connection right after it is answered, not lost to a subscription still in flight', async () => {
    const codes: string[] = [];
    for (let i = 0; i < 30; i++) {
      const nc = await connect({ servers: nats.url });
      const fresh = await serveOperations({ nc, node: `fresh${i}`, version: '0.0.1', handlers: { 'node.info': async () => ({ node: 'x' }) } as unknown as OperationHandlers, logger: pino({ level: 'silent' }) });
      await client.call(`fresh${i}`, 'node.info', {}).then(
        () => codes.push('OK'),
        (error: unknown) => codes.push(String((error as VirtError).code)),
      );
      await tearDown(fresh, nc);
    }
    expect(codes).toEqual(Array(30).fill('OK'));
  });
});

describe('serveOperations bounds every reply', () => {
  it('knows the server max_payload', () => {
    expect(agentSide.info?.max_payload).toBe(MAX_PAYLOAD);
  });

  it('a reply over max_payload becomes REPLY_TOO_LARGE (500), and the service keeps answering', async () => {
    infoSize = MAX_PAYLOAD;
    const error = await failure(client.call('guard', 'node.info', {}));
    expect(VirtError.is(error, 'REPLY_TOO_LARGE')).toBe(true);
    expect((error as VirtError).status).toBe(500);
    expect(results.at(-1)).toEqual(['node.info', 'REPLY_TOO_LARGE']);
    infoSize = 10;
    expect(await client.call('guard', 'node.info', {})).toEqual({ node: 'x'.repeat(10) });
    expect(results.at(-1)).toEqual(['node.info', 'OK']);
  });

  it('a reply just under the bound still goes out whole', async () => {
    // {"result":{"node":"…"}} is 22 bytes around the string
    infoSize = MAX_PAYLOAD - 22;
    const info = await client.call('guard', 'node.info', {});
    expect(info.node).toHaveLength(MAX_PAYLOAD - 22);
    infoSize = 10;
  });

  it('a result that cannot be encoded is INTERNAL, not a thrown reply', async () => {
    const error = await failure(client.call('guard', 'node.stats', {}));
    expect(VirtError.is(error, 'INTERNAL')).toBe(true);
    expect(await client.call('guard', 'node.info', {})).toEqual({ node: 'x'.repeat(10) });
  });
});

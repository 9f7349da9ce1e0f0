import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { VirtError } from '@virtbus/api-contract';
import { type NatsServerHandle, startNatsServer, tearDown } from '@virtbus/testing';
import { request, serve } from '@virtbus/client';

describe('serve / request: one request/reply pair for every bus verb', () => {
  let server: NatsServerHandle;
  let nc: NatsConnection;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
  });

  afterAll(() => tearDown(nc, server));

  const failure = (promise: Promise<unknown>) => promise.then(() => expect.unreachable('the call succeeded'), (error: unknown) => error as VirtError);

  it('carries results, VirtErrors with their code, and other errors as INTERNAL', async () => {
    const seen: string[] = [];
    const sub = serve(
      nc,
      'rpc.test.*',
      async (msg) => {
        const verb = msg.subject.split('.').pop();
        if (verb === 'refuse') throw new VirtError('OPERATION_INVALID', 'not now');
        if (verb === 'crash') throw new Error('boom');
        return { echo: JSON.parse(new TextDecoder().decode(msg.data)) as unknown };
      },
      { onResult: (msg) => seen.push(`ok ${msg.subject}`), onError: (msg, body) => seen.push(`${body.code} ${msg.subject}`) },
    );
    try {
      expect(await request(nc, 'rpc.test.echo', { a: 1 }, { timeoutMs: 2000, callee: 'test' })).toEqual({ echo: { a: 1 } });
      const refused = await failure(request(nc, 'rpc.test.refuse', {}, { timeoutMs: 2000, callee: 'test' }));
      expect(VirtError.is(refused, 'OPERATION_INVALID') && refused.message).toBe('not now');
      expect(VirtError.is(await failure(request(nc, 'rpc.test.crash', {}, { timeoutMs: 2000, callee: 'test' })), 'INTERNAL')).toBe(true);
      expect(seen).toEqual(['ok rpc.test.echo', 'OPERATION_INVALID rpc.test.refuse', 'INTERNAL rpc.test.crash']);
    } finally {
      sub.unsubscribe();
    }
  });

  it('tells no responders (AGENT_UNREACHABLE, or the caller’s own error) from no answer in time (OPERATION_TIMEOUT)', async () => {
    const nobody = await failure(request(nc, 'rpc.nobody', {}, { timeoutMs: 2000, callee: 'node x' }));
    expect(VirtError.is(nobody, 'AGENT_UNREACHABLE'), String(nobody)).toBe(true);
    const custom = await failure(request(nc, 'rpc.nobody', {}, { timeoutMs: 2000, callee: 'node x', noResponders: () => new VirtError('NO_NODE', 'no node x') }));
    expect(VirtError.is(custom, 'NO_NODE')).toBe(true);
    // a listener that never answers
    const silent = nc.subscribe('rpc.silent');
    try {
      const late = await failure(request(nc, 'rpc.silent', {}, { timeoutMs: 200, callee: 'node x' }));
      expect(VirtError.is(late, 'OPERATION_TIMEOUT'), String(late)).toBe(true);
    } finally {
      silent.unsubscribe();
    }
  });
});

import { describe, expect, it } from 'vitest';
import { VirtError } from '@virtbus/api-contract';
import { useNatsBus } from '@virtbus/testing';
import { request, serve } from '@virtbus/client';

describe('serve / request: one request/reply pair for every bus verb', () => {
  const bus = useNatsBus();

  const failure = (promise: Promise<unknown>) => promise.then(() => expect.unreachable('the call succeeded'), (error: unknown) => error as VirtError);

  it('carries results, VirtErrors with their code, and other errors as INTERNAL', async () => {
    const seen: string[] = [];
    const sub = serve(
      bus.nc,
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
      expect(await request(bus.nc, 'rpc.test.echo', { a: 1 }, { timeoutMs: 2000, callee: 'test' })).toEqual({ echo: { a: 1 } });
      const refused = await failure(request(bus.nc, 'rpc.test.refuse', {}, { timeoutMs: 2000, callee: 'test' }));
      expect(VirtError.is(refused, 'OPERATION_INVALID') && refused.message).toBe('not now');
      expect(VirtError.is(await failure(request(bus.nc, 'rpc.test.crash', {}, { timeoutMs: 2000, callee: 'test' })), 'INTERNAL')).toBe(true);
      expect(seen).toEqual(['ok rpc.test.echo', 'OPERATION_INVALID rpc.test.refuse', 'INTERNAL rpc.test.crash']);
    } finally {
      sub.unsubscribe();
    }
  });

  it('tells no responders (AGENT_UNREACHABLE, or the caller’s own error) from no answer in time (OPERATION_TIMEOUT)', async () => {
    const nobody = await failure(request(bus.nc, 'rpc.nobody', {}, { timeoutMs: 2000, callee: 'node x' }));
    expect(VirtError.is(nobody, 'AGENT_UNREACHABLE'), String(nobody)).toBe(true);
    const custom = await failure(request(bus.nc, 'rpc.nobody', {}, { timeoutMs: 2000, callee: 'node x', noResponders: () => new VirtError('NO_NODE', 'no node x') }));
    expect(VirtError.is(custom, 'NO_NODE')).toBe(true);
    // a listener that never answers
    const silent = bus.nc.subscribe('rpc.silent');
    try {
      const late = await failure(request(bus.nc, 'rpc.silent', {}, { timeoutMs: 200, callee: 'node x' }));
      expect(VirtError.is(late, 'OPERATION_TIMEOUT'), String(late)).toBe(true);
    } finally {
      silent.unsubscribe();
    }
  });
});

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog, auditPlugin, auditRecordValidator, traceIdFrom, type AuditRecord } from './audit.js';
import { authPlugin, requirePermission, sendError } from './auth-plugin.js';
import { createToken } from './tokens.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'virtbus-audit-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const readLines = async (file: string) =>
  (await readFile(file, 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as AuditRecord);

describe('traceIdFrom', () => {
  it('takes the trace id of a valid traceparent only', () => {
    expect(traceIdFrom('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(traceIdFrom('00-00000000000000000000000000000000-00f067aa0ba902b7-01')).toBeNull();
    expect(traceIdFrom('garbage')).toBeNull();
    expect(traceIdFrom(undefined)).toBeNull();
  });
});

describe('AuditLog', () => {
  it('appends JSON lines in order and hands each record to the publisher', async () => {
    const published: AuditRecord[] = [];
    const file = join(dir, 'sub', 'audit.jsonl');
    const log = new AuditLog({ file, publish: (r) => void published.push(r) });
    const base: AuditRecord = {
      time: new Date().toISOString(),
      identity: 'ops',
      role: 'operator',
      via: 'token',
      action: 'domain.state',
      node: 'a',
      object: 'vm1',
      result: 'ok',
      status: 200,
      traceId: null,
      remoteAddress: '127.0.0.1',
    };
    await Promise.all(Array.from({ length: 20 }, (_, i) => log.write({ ...base, object: `vm${i}` })));
    const lines = await readLines(file);
    expect(lines.map((l) => l.object)).toEqual(Array.from({ length: 20 }, (_, i) => `vm${i}`));
    expect(published).toHaveLength(20);
  });

  it('reports a failing publisher without failing the write', async () => {
    const errors: unknown[] = [];
    const log = new AuditLog({
      file: join(dir, 'p.jsonl'),
      publish: async () => {
        throw new Error('bus down');
      },
      onError: (e) => errors.push(e),
    });
    await log.write({ time: new Date().toISOString(), identity: 'x', role: null, via: null, action: 'a', node: null, object: null, result: 'ok', status: 200, traceId: null, remoteAddress: null });
    await new Promise((r) => setImmediate(r));
    expect(errors).toHaveLength(1);
  });
});

describe('auditPlugin', () => {
  it('records mutating calls, allowed and refused, with identity, node, object, result and trace id', async () => {
    const file = join(dir, 'http.jsonl');
    const log = new AuditLog({ file });
    const viewer = createToken({ name: 'viewer', role: 'read-only' });
    const ops = createToken({ name: 'ops', role: 'operator' });
    const app = Fastify();
    await app.register(authPlugin, { tokens: [viewer.record, ops.record] });
    await app.register(auditPlugin, { log });
    app.get('/v1/nodes/:node/domains', { preHandler: requirePermission('domain.list') }, async () => []);
    app.put('/v1/nodes/:node/domains/:id/state', { preHandler: requirePermission('domain.state') }, async (request, reply) =>
      (request.params as { id: string }).id === 'missing' ? sendError(reply, 'NO_DOMAIN', 'no such domain') : { ok: true },
    );
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    await app.inject({ method: 'GET', url: '/v1/nodes/a/domains', headers: { authorization: `Bearer ${viewer.token}` } });
    await app.inject({ method: 'PUT', url: '/v1/nodes/a/domains/vm1/state', headers: { authorization: `Bearer ${viewer.token}` }, payload: {} });
    await app.inject({ method: 'PUT', url: '/v1/nodes/a/domains/vm1/state', headers: { authorization: `Bearer ${ops.token}`, traceparent }, payload: {} });
    await app.inject({ method: 'PUT', url: '/v1/nodes/b/domains/missing/state', headers: { authorization: `Bearer ${ops.token}` }, payload: {} });
    await app.inject({ method: 'PUT', url: '/v1/nodes/a/domains/vm1/state', payload: {} });
    await log.flush();
    const lines = await readLines(file);
    for (const line of lines) expect(auditRecordValidator.check(line)).toBe(true);
    expect(lines.map((l) => [l.identity, l.node, l.object, l.result, l.status, l.errorCode ?? null])).toEqual([
      ['viewer', 'a', 'vm1', 'error', 403, 'FORBIDDEN'],
      ['ops', 'a', 'vm1', 'ok', 200, null],
      ['ops', 'b', 'missing', 'error', 404, 'NO_DOMAIN'],
      ['anonymous', 'a', 'vm1', 'error', 401, 'UNAUTHORIZED'],
    ]);
    expect(lines[1]).toMatchObject({ action: 'PUT /v1/nodes/:node/domains/:id/state', role: 'operator', via: 'token', traceId: '4bf92f3577b34da6a3ce929d0e0e4736' });
    await app.close();
  });
});

import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpPath, operationPath, OperationNames, Operations, type OperationName, type OperationSpec } from '@virtbus/api-contract';
import { auditRecordValidator, createToken, minimumRoleFor, type AuditRecord } from '@virtbus/security';
import { buildApp, type GatewayApp } from '../src/index.js';
import { tearDown } from '@virtbus/testing';

/** A valid value for each path parameter of the table's routes. */
const Samples: Record<string, string> = {
  id: '3f1c2b9e-8d4a-4c7e-9a61-2b5d7e0f4c11',
  pool: 'p1',
  vol: 'v1',
  network: 'n1',
  name: 'eth0',
  snapshot: 's1',
  mac: '52:54:00:00:00:01',
  target: 'vda',
  user: 'root',
};
const BODY_LIMIT = 1024;

const tableRoutes = OperationNames.map((name) => [name, Operations[name] as OperationSpec] as const).filter(([, spec]) => spec.http && spec.http.served !== 'hand') as [
  OperationName,
  OperationSpec & { http: NonNullable<OperationSpec['http']> },
][];

describe('every route of the operation table runs the app-wide checks (no bus needed: each refusal comes first)', () => {
  const adminA = createToken({ name: 'admin-a', role: 'admin', nodes: ['a'] });
  const viewer = createToken({ name: 'viewer', role: 'read-only' });
  let app: GatewayApp;
  let dir: string;
  let auditFile: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtbus-op-routes-'));
    auditFile = join(dir, 'audit.jsonl');
    app = await buildApp({
      nc: () => Promise.reject(new Error('no bus in this test')),
      bodyLimit: BODY_LIMIT,
      security: { tokens: [adminA.record, viewer.record], auditFile },
    });
  });

  afterAll(() => tearDown(app, dir));

  const call = (name: OperationName, node: string, token: string, extra: { headers?: Record<string, string>; payload?: string } = {}) => {
    const http = (Operations[name] as OperationSpec).http!;
    const params = Object.fromEntries([...httpPath(http).matchAll(/:(\w+)/g)].map(([, param]) => [param!, param === 'node' ? node : Samples[param!]!]));
    const hasBody = http.method === 'POST' || http.method === 'PUT';
    return app.inject({
      method: http.method,
      url: operationPath(http, params),
      headers: { authorization: `Bearer ${token}`, ...(hasBody ? { 'content-type': 'application/json' } : {}), ...extra.headers },
      ...(hasBody ? { payload: extra.payload ?? '{}' } : {}),
    });
  };

  it('covers every bound operation but the hand routes', () => {
    expect(tableRoutes.length).toBeGreaterThan(60);
    for (const [name] of tableRoutes) expect(Samples, name).toBeDefined();
  });

  it("refuses a node outside the caller's scope on every route", async () => {
    for (const [name] of tableRoutes) {
      const reply = await call(name, 'b', adminA.token);
      expect([name, reply.statusCode, reply.json<{ message: string }>().message]).toEqual([name, 403, 'admin-a may not use node b']);
    }
  });

  it("refuses a role below the operation's permission on every write route", async () => {
    for (const [name] of tableRoutes.filter(([name]) => minimumRoleFor(name) !== 'read-only')) {
      const reply = await call(name, 'a', viewer.token);
      expect([name, reply.statusCode, reply.json<{ message: string }>().message]).toEqual([name, 403, `viewer has role read-only; this needs ${minimumRoleFor(name)}`]);
    }
  });

  it('checks the Idempotency-Key and the body limit on every write route', async () => {
    for (const [name, spec] of tableRoutes.filter(([, spec]) => spec.http.method !== 'GET')) {
      const badKey = await call(name, 'a', adminA.token, { headers: { 'idempotency-key': 'k'.repeat(300) } });
      expect([name, badKey.statusCode, badKey.json<{ message: string }>().message]).toEqual([name, 400, 'Idempotency-Key must be 1 to 255 visible ASCII characters']);
      if (spec.http.body === undefined) continue;
      const large = await call(name, 'a', adminA.token, { payload: JSON.stringify({ pad: 'x'.repeat(BODY_LIMIT) }) });
      expect([name, large.statusCode, large.json<{ code: string }>().code]).toEqual([name, 413, 'PAYLOAD_TOO_LARGE']);
    }
  });

  it('audits every write route, refused calls included', async () => {
    await app.auditLog.flush();
    const records = (await readFile(auditFile, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as AuditRecord);
    for (const record of records) expect(auditRecordValidator.check(record)).toBe(true);
    for (const [name, spec] of tableRoutes.filter(([, spec]) => spec.http.method !== 'GET')) {
      const action = `${spec.http.method} ${httpPath(spec.http)}`;
      expect(records.some((r) => r.action === action && r.node === 'b' && r.identity === 'admin-a' && r.status === 403), `${name} ${action}`).toBe(true);
    }
  });
});

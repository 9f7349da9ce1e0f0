import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { authPlugin, canSeeNode, requirePermission, visibleNodes, type AuthPluginOptions } from './auth-plugin.js';
import { createToken } from './tokens.js';

const now = new Date('2026-06-01T12:00:00Z');
const readOnly = createToken({ name: 'viewer', role: 'read-only', now });
const operator = createToken({ name: 'ops', role: 'operator', now });
const admin = createToken({ name: 'root', role: 'admin', ttlSeconds: 3600, now });
const nodeA = createToken({ name: 'ops-a', role: 'operator', nodes: ['a'], now });
const expired = createToken({ name: 'old', role: 'admin', ttlSeconds: 60, now: new Date(now.getTime() - 120_000) });
const records = [readOnly, operator, admin, nodeA, expired].map((t) => t.record);

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function build(options: AuthPluginOptions): Promise<FastifyInstance> {
  const app = Fastify();
  apps.push(app);
  await app.register(authPlugin, { now: () => now, ...options });
  app.get('/health', { config: { auth: false } }, async () => ({ ok: true }));
  app.get('/v1/nodes', async (request) => ({ nodes: visibleNodes(request.identity, ['a', 'b'], (n) => n) }));
  app.get('/v1/nodes/:node/domains', { preHandler: requirePermission('domain.list') }, async (request) => ({ who: request.identity }));
  app.put('/v1/nodes/:node/domains/:id/state', { preHandler: requirePermission('domain.state') }, async () => ({ ok: true }));
  app.post('/v1/nodes/:node/domains', { preHandler: requirePermission('domain.define') }, async () => ({ ok: true }));
  await app.ready();
  return app;
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('authPlugin with tokens', () => {
  it('answers 401 UNAUTHORIZED with the error body for missing, invalid and expired tokens', async () => {
    const app = await build({ tokens: records });
    const missing = await app.inject({ method: 'GET', url: '/v1/nodes/a/domains' });
    expect(missing.statusCode).toBe(401);
    expect(missing.json()).toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
    expect(missing.headers['www-authenticate']).toContain('Bearer');
    const invalid = await app.inject({ method: 'GET', url: '/v1/nodes/a/domains', headers: bearer(`${readOnly.token.slice(0, -2)}xx`) });
    expect(invalid.statusCode).toBe(401);
    const late = await app.inject({ method: 'GET', url: '/v1/nodes/a/domains', headers: bearer(expired.token) });
    expect(late.statusCode).toBe(401);
    expect(late.json()).toEqual({ code: 'UNAUTHORIZED', message: 'the token has expired', status: 401 });
    const basic = await app.inject({ method: 'GET', url: '/v1/nodes/a/domains', headers: { authorization: 'Basic eDp5' } });
    expect(basic.statusCode).toBe(401);
  });

  it('lets read-only list (200) but not start (403 FORBIDDEN)', async () => {
    const app = await build({ tokens: records });
    const list = await app.inject({ method: 'GET', url: '/v1/nodes/a/domains', headers: bearer(readOnly.token) });
    expect(list.statusCode).toBe(200);
    expect(list.json().who).toEqual({ name: 'viewer', role: 'read-only', nodes: 'all', via: 'token' });
    const start = await app.inject({ method: 'PUT', url: '/v1/nodes/a/domains/vm1/state', headers: bearer(readOnly.token), payload: { state: 'running' } });
    expect(start.statusCode).toBe(403);
    expect(start.json()).toMatchObject({ code: 'FORBIDDEN', status: 403 });
  });

  it('lets operators run domains but only admins define them', async () => {
    const app = await build({ tokens: records });
    expect((await app.inject({ method: 'PUT', url: '/v1/nodes/a/domains/vm1/state', headers: bearer(operator.token), payload: {} })).statusCode).toBe(200);
    expect((await app.inject({ method: 'POST', url: '/v1/nodes/a/domains', headers: bearer(operator.token), payload: {} })).statusCode).toBe(403);
    expect((await app.inject({ method: 'POST', url: '/v1/nodes/a/domains', headers: bearer(admin.token), payload: {} })).statusCode).toBe(200);
  });

  it('limits a token to its nodes: 403 elsewhere and lists show only its nodes', async () => {
    const app = await build({ tokens: records });
    expect((await app.inject({ method: 'PUT', url: '/v1/nodes/a/domains/vm1/state', headers: bearer(nodeA.token), payload: {} })).statusCode).toBe(200);
    const other = await app.inject({ method: 'PUT', url: '/v1/nodes/b/domains/vm1/state', headers: bearer(nodeA.token), payload: {} });
    expect(other.statusCode).toBe(403);
    expect(other.json().message).toContain('node b');
    expect((await app.inject({ method: 'GET', url: '/v1/nodes', headers: bearer(nodeA.token) })).json()).toEqual({ nodes: ['a'] });
    expect((await app.inject({ method: 'GET', url: '/v1/nodes', headers: bearer(readOnly.token) })).json()).toEqual({ nodes: ['a', 'b'] });
  });

  it('skips routes marked auth: false and reads a reloadable token list', async () => {
    let current = [readOnly.record];
    const app = await build({ tokens: () => current });
    expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/v1/nodes/a/domains', headers: bearer(readOnly.token) })).statusCode).toBe(200);
    current = [];
    expect((await app.inject({ method: 'GET', url: '/v1/nodes/a/domains', headers: bearer(readOnly.token) })).statusCode).toBe(401);
  });
});

describe('loopback dev mode', () => {
  it('makes every caller admin when nothing is configured and the server is on loopback', async () => {
    const app = await build({ listenHost: '127.0.0.1' });
    const res = await app.inject({ method: 'POST', url: '/v1/nodes/a/domains', payload: {} });
    expect(res.statusCode).toBe(200);
  });

  it('is refused on a non-loopback listen address', async () => {
    await expect(build({ listenHost: '0.0.0.0' })).rejects.toThrow(/refusing dev mode/);
  });

  it('checks the address actually bound', async () => {
    const app = await build({});
    expect((await app.inject({ method: 'GET', url: '/v1/nodes/a/domains' })).statusCode).toBe(401);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address() as { port: number };
    const res = await fetch(`http://127.0.0.1:${address.port}/v1/nodes/a/domains`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { who: { via: string } }).who.via).toBe('loopback-dev');
  });
});

describe('canSeeNode', () => {
  it('needs an identity whose nodes include the node', () => {
    expect(canSeeNode(null, 'a')).toBe(false);
    expect(canSeeNode({ name: 'x', role: 'admin', nodes: 'all', via: 'token' }, 'z')).toBe(true);
    expect(canSeeNode({ name: 'x', role: 'admin', nodes: ['a'], via: 'token' }, 'b')).toBe(false);
  });
});

import { readFile, mkdtemp } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasBinaryOrSkip, tearDown } from '@virtbus/testing';
import { authPlugin, createToken, generateSecurityBundle, requirePermission, visibleNodes, type SecurityBundle } from '../src/index.js';

const canRun = hasBinaryOrSkip('openssl');

describe.runIf(canRun)('auth plugin over HTTPS with the generated certificates', () => {
  let dir: string;
  let bundle: SecurityBundle;
  let app: FastifyInstance;
  let port: number;
  let ca: Buffer;
  const viewer = createToken({ name: 'viewer', role: 'read-only' });
  const expired = createToken({ name: 'old', role: 'admin', ttlSeconds: 1, now: new Date(Date.now() - 60_000) });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtbus-https-'));
    bundle = await generateSecurityBundle({ outDir: dir, nodes: ['a'] });
    ca = await readFile(bundle.ca.cert);
    app = Fastify({
      https: {
        cert: await readFile(bundle.gatewayHttps.cert),
        key: await readFile(bundle.gatewayHttps.key),
        ca,
        // token clients bring no certificate; the plugin only trusts certificates the CA verified
        requestCert: true,
        rejectUnauthorized: false,
      },
    });
    await app.register(authPlugin, { tokens: [viewer.record, expired.record], certificates: {} });
    app.get('/v1/nodes', async (req) => ({ nodes: visibleNodes(req.identity, ['a', 'b'], (n) => n) }));
    app.get('/v1/nodes/:node/domains', { preHandler: requirePermission('domain.list') }, async (req) => ({ who: req.identity }));
    app.put('/v1/nodes/:node/domains/:id/state', { preHandler: requirePermission('domain.state') }, async () => ({ ok: true }));
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as { port: number }).port;
  });

  afterAll(() => tearDown(app, dir));

  async function call(method: string, path: string, options: { identity?: string; token?: string } = {}): Promise<{ status: number; body: Record<string, unknown> }> {
    const identity = options.identity ? bundle.identities.find((i) => i.name === options.identity) : undefined;
    const cert = identity ? { cert: await readFile(identity.files.cert), key: await readFile(identity.files.key) } : {};
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path,
          method,
          ca,
          ...cert,
          headers: { ...(options.token ? { authorization: `Bearer ${options.token}` } : {}), ...(method === 'PUT' ? { 'content-type': 'application/json' } : {}) },
        },
        (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
        },
      );
      req.on('error', reject);
      req.end(method === 'PUT' ? JSON.stringify({ state: 'running' }) : undefined);
    });
  }

  it('authenticates the read-only client certificate: list 200, start 403', async () => {
    const list = await call('GET', '/v1/nodes/a/domains', { identity: 'readonly' });
    expect(list.status).toBe(200);
    expect(list.body.who).toEqual({ name: 'readonly', role: 'read-only', nodes: 'all', via: 'certificate' });
    const start = await call('PUT', '/v1/nodes/a/domains/vm1/state', { identity: 'readonly' });
    expect(start).toEqual({ status: 403, body: { code: 'FORBIDDEN', message: 'readonly has role read-only; this needs operator', status: 403 } });
  });

  it('lets the operator certificate start a domain', async () => {
    expect((await call('PUT', '/v1/nodes/a/domains/vm1/state', { identity: 'operator' })).status).toBe(200);
  });

  it('refuses a certificate without a role (an agent identity) with 403', async () => {
    const res = await call('GET', '/v1/nodes/a/domains', { identity: 'agent-a' });
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('FORBIDDEN');
  });

  it('takes a read-only bearer token over HTTPS: list 200, start 403; an expired token 401; nothing 401', async () => {
    expect((await call('GET', '/v1/nodes', { token: viewer.token })).body).toEqual({ nodes: ['a', 'b'] });
    expect((await call('PUT', '/v1/nodes/a/domains/vm1/state', { token: viewer.token })).status).toBe(403);
    expect(await call('GET', '/v1/nodes/a/domains', { token: expired.token })).toEqual({
      status: 401,
      body: { code: 'UNAUTHORIZED', message: 'the token has expired', status: 401 },
    });
    expect((await call('GET', '/v1/nodes/a/domains')).status).toBe(401);
  });
});

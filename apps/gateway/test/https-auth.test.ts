import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Subjects, type Domain } from '@virtbus/api-contract';
import {
  auditRecordValidator,
  createToken,
  DEFAULT_CLIENTS,
  generateSecurityBundle,
  natsConnectionOptions,
  serializeTokenFile,
  type AuditRecord,
  type NatsClientConfig,
  type SecurityBundle,
} from '@virtbus/security';
import { builtBundle, hasBinaryOrSkip, REPO_ROOT, spawnAgent, startNatsServer, type AgentProcess, type NatsServerHandle, waitFor } from '@virtbus/testing';
import { buildApp, startGateway, type RunningGateway } from '../src/index.js';

const canRun = hasBinaryOrSkip('nats-server') && hasBinaryOrSkip('openssl');

interface Reply {
  status: number;
  body: unknown;
}

describe.runIf(canRun)('gateway over HTTPS with tokens and certificates, agents over mTLS', () => {
  let dir: string;
  let bundle: SecurityBundle;
  let server: NatsServerHandle;
  let natsUrl: string;
  let gateway: RunningGateway;
  let admin: NatsConnection;
  let ca: Buffer;
  let auditFile: string;
  const agents: AgentProcess[] = [];
  const busAudit: AuditRecord[] = [];
  const viewer = createToken({ name: 'viewer', role: 'read-only' });
  const operator = createToken({ name: 'ops', role: 'operator' });
  const adminToken = createToken({ name: 'root', role: 'admin' });
  const expired = createToken({ name: 'old', role: 'admin', ttlSeconds: 1, now: new Date(Date.now() - 60_000) });
  const limited = createToken({ name: 'ops-a', role: 'operator', nodes: ['a'] });
  const adminA = createToken({ name: 'admin-a', role: 'admin', nodes: ['a'] });

  function identityConfig(name: string): NatsClientConfig {
    const identity = bundle.identities.find((i) => i.name === name);
    if (!identity) throw new Error(`no identity ${name}`);
    return { url: natsUrl, ca: bundle.ca.cert, cert: identity.files.cert, key: identity.files.key, inboxPrefix: `_INBOX.${name}`, name };
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtbus-gw-https-'));
    bundle = await generateSecurityBundle({
      outDir: join(dir, 'security'),
      nodes: ['a', 'b'],
      clients: [...DEFAULT_CLIENTS, { name: 'ro-a', kind: 'read-only', nodes: ['a'] }],
    });
    ca = await readFile(bundle.ca.cert);
    server = await startNatsServer({ config: bundle.configFragment });
    natsUrl = `tls://127.0.0.1:${server.port}`;
    admin = await connect(natsConnectionOptions(identityConfig('admin')));
    const readyConnection = natsConnectionOptions(identityConfig('admin'));
    // each agent runs as its own process with its own identity from the environment, like a deployment
    const agentEnv = (node: string): Record<string, string> => {
      const config = identityConfig(`agent-${node}`);
      return { NATS_CA: config.ca!, NATS_CERT: config.cert!, NATS_KEY: config.key!, NATS_INBOX_PREFIX: config.inboxPrefix!, VIRTBUS_METRICS_ADDRESS: 'off' };
    };
    // a starts first so it creates the stream and the bucket; b then finds them and may not update them
    agents.push(await spawnAgent({ node: 'a', natsUrl, stateDir: join(dir, 'a'), env: agentEnv('a'), readyConnection }));
    agents.push(await spawnAgent({ node: 'b', natsUrl, stateDir: join(dir, 'b'), env: agentEnv('b'), readyConnection }));

    const audit = admin.subscribe(Subjects.allAudit, {
      callback: (_error, msg) => {
        busAudit.push(msg.json<AuditRecord>());
      },
    });
    void audit;
    await admin.flush();

    const tokenFile = join(dir, 'tokens.json');
    await writeFile(tokenFile, serializeTokenFile({ version: 1, tokens: [viewer, operator, adminToken, expired, limited, adminA].map((t) => t.record) }), { mode: 0o600 });
    const tokens = JSON.parse(await readFile(tokenFile, 'utf8')) as { tokens: never[] };
    auditFile = join(dir, 'audit', 'audit.jsonl');
    gateway = await startGateway({
      natsConfig: identityConfig('gateway'),
      host: '127.0.0.1',
      port: 0,
      tls: { cert: bundle.gatewayHttps.cert, key: bundle.gatewayHttps.key, ca: bundle.ca.cert },
      security: { tokens: tokens.tokens, certificates: {}, auditFile, gatewayId: 'gw1', rateLimitPerSecond: 1000 },
      discoveryWaitMs: 500,
    });
  }, 120_000);

  afterAll(async () => {
    await gateway?.close();
    await Promise.all(agents.map((agent) => agent.stop()));
    await admin?.close();
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function call(method: string, path: string, options: { token?: string; identity?: string; body?: unknown } = {}): Promise<Reply> {
    const identity = options.identity ? bundle.identities.find((i) => i.name === options.identity) : undefined;
    const cert = identity ? { cert: await readFile(identity.files.cert), key: await readFile(identity.files.key) } : {};
    const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
    const url = new URL(path, gateway.url);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname + url.search,
          method,
          ca,
          ...cert,
          headers: {
            ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
            ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
          },
        },
        (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as unknown) : undefined }));
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  it('serves HTTPS only', () => {
    expect(gateway.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it('read-only token: list 200, start 403 with the error body', async () => {
    const list = await call('GET', '/v1/nodes/a/domains', { token: viewer.token });
    expect(list.status).toBe(200);
    const start = await call('PUT', '/v1/nodes/a/domains/anything/state', { token: viewer.token, body: { action: 'start' } });
    expect(start).toEqual({ status: 403, body: { code: 'FORBIDDEN', message: 'viewer has role read-only; this needs operator', status: 403 } });
    const define = await call('POST', '/v1/nodes/a/domains', { token: viewer.token, body: { name: 'nope', driver: 'test' } });
    expect(define.status).toBe(403);
  });

  it('admin token defines (201), operator token starts (200) but may not define (403)', async () => {
    const define = await call('POST', '/v1/nodes/a/domains', { token: adminToken.token, body: { name: 'web1', driver: 'test', vcpus: 1, memory: 64 } });
    expect(define.status).toBe(201);
    expect((define.body as Domain).name).toBe('web1');
    const refused = await call('POST', '/v1/nodes/a/domains', { token: operator.token, body: { name: 'web2', driver: 'test' } });
    expect((refused.body as { code: string }).code).toBe('FORBIDDEN');
    const start = await call('PUT', '/v1/nodes/a/domains/web1/state', { token: operator.token, body: { action: 'start' } });
    expect(start.status).toBe(200);
    expect((start.body as Domain).state).toBe('running');
  });

  it('expired, missing and malformed credentials are 401 UNAUTHORIZED', async () => {
    for (const token of [expired.token, undefined, 'vbt_garbage']) {
      const reply = await call('GET', '/v1/nodes/a/domains', { token });
      expect(reply.status).toBe(401);
      expect((reply.body as { code: string }).code).toBe('UNAUTHORIZED');
    }
    const expiredReply = await call('GET', '/v1/nodes', { token: expired.token });
    expect(expiredReply.body).toEqual({ code: 'UNAUTHORIZED', message: 'the token has expired', status: 401 });
  });

  it('a token limited to node a gets 403 on node b and sees only a in the node list', async () => {
    const all = await call('GET', '/v1/nodes', { token: viewer.token });
    expect((all.body as { nodes: { node: string }[] }).nodes.map((n) => n.node).sort()).toEqual(['a', 'b']);
    const own = await call('GET', '/v1/nodes/a/domains', { token: limited.token });
    expect(own.status).toBe(200);
    const other = await call('GET', '/v1/nodes/b/domains', { token: limited.token });
    expect(other).toEqual({ status: 403, body: { code: 'FORBIDDEN', message: 'ops-a may not use node b', status: 403 } });
    const otherStart = await call('PUT', '/v1/nodes/b/domains/x/state', { token: limited.token, body: { action: 'start' } });
    expect(otherStart.status).toBe(403);
    const nodes = await call('GET', '/v1/nodes', { token: limited.token });
    expect((nodes.body as { nodes: { node: string }[] }).nodes.map((n) => n.node)).toEqual(['a']);
  });

  it('authenticates client certificates: the read-only identity lists but may not start; an agent certificate has no HTTP role', async () => {
    expect((await call('GET', '/v1/nodes/b/domains', { identity: 'readonly' })).status).toBe(200);
    const start = await call('PUT', '/v1/nodes/a/domains/web1/state', { identity: 'readonly', body: { action: 'destroy' } });
    expect(start.status).toBe(403);
    const agentCert = await call('GET', '/v1/nodes/a/domains', { identity: 'agent-a' });
    expect(agentCert).toEqual({ status: 403, body: { code: 'FORBIDDEN', message: 'certificate agent-a carries no virtbus role', status: 403 } });
    expect((await call('GET', '/v1/nodes/a/domains/web1', { identity: 'operator' })).status).toBe(200);
  });

  it('a certificate limited to node a reads a (200) but not b (403), like a token', async () => {
    expect((await call('GET', '/v1/nodes/a/domains', { identity: 'ro-a' })).status).toBe(200);
    const other = await call('GET', '/v1/nodes/b/domains', { identity: 'ro-a' });
    expect(other).toEqual({ status: 403, body: { code: 'FORBIDDEN', message: 'ro-a may not use node b', status: 403 } });
    const nodes = await call('GET', '/v1/nodes', { identity: 'ro-a' });
    expect((nodes.body as { nodes: { node: string }[] }).nodes.map((n) => n.node)).toEqual(['a']);
  });

  it('a token limited to node a may not migrate to node b (403); an unlimited admin may (202), both audited with both nodes', async () => {
    const define = await call('POST', '/v1/nodes/a/domains', { token: adminToken.token, body: { name: 'mig1', driver: 'test', vcpus: 1, memory: 64 } });
    expect(define.status).toBe(201);
    const refused = await call('POST', '/v1/nodes/a/domains/mig1/migrate', { token: adminA.token, body: { destination: 'b', offline: true } });
    expect(refused).toEqual({ status: 403, body: { code: 'FORBIDDEN', message: 'admin-a may not use node b', status: 403 } });
    expect((await call('GET', '/v1/nodes/b/domains/mig1', { token: adminToken.token })).status).toBe(404);

    const started = await call('POST', '/v1/nodes/a/domains/mig1/migrate', { token: adminToken.token, body: { destination: 'b', offline: true } });
    expect(started.status).toBe(202);
    const id = (started.body as { id: string }).id;
    // a few seconds on an idle machine: the deadline is the helper's
    const status = await waitFor('the migration to end', async () => {
      const current = ((await call('GET', `/v1/nodes/a/operations/${id}`, { token: adminToken.token })).body as { status: string }).status;
      return current !== 'running' && current;
    });
    expect(status).toBe('success');
    expect((await call('GET', '/v1/nodes/b/domains/mig1', { token: adminToken.token })).status).toBe(200);

    // the gateway writes a record once its response went out (onResponse): the client may read the file before that
    const migrateRecords = async () =>
      (await readFile(auditFile, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as AuditRecord).filter((r) => r.action === 'POST /v1/nodes/:node/domains/:id/migrate');
    await waitFor('the audit record of the accepted migration', async () => (await migrateRecords()).some((r) => r.status === 202), 30_000);
    const migrations = (await migrateRecords()).map((r) => [r.identity, r.status, r.node, r.nodes]);
    expect(migrations).toEqual([
      ['admin-a', 403, 'a', ['a', 'b']],
      ['root', 202, 'a', ['a', 'b']],
    ]);
  });

  it("agent a's certificate cannot plant a domain on node b through peer.migration.prepare, and b logs the attempt", async () => {
    const agentA = await connect(natsConnectionOptions(identityConfig('agent-a')));
    try {
      const web1 = (await call('GET', '/v1/nodes/a/domains/web1', { token: adminToken.token })).body as Domain;
      const config = { ...web1.config, name: 'planted', uuid: '0b6c5f3e-5d2a-4c1e-9a53-6f1d2a7b8c90', autostart: true };
      const prepare = { migrationId: '5d0f1e2a-3b4c-4d5e-8f60-718293a4b5c6', source: 'a', config, options: { destination: 'b', offline: true }, diskSizes: {} };
      const reply = await agentA.request('virt.v1.b.peer.migration.prepare', JSON.stringify(prepare), { timeout: 10_000 });
      const body = reply.json<{ result?: unknown; error?: { code: string } }>();
      expect(body.error?.code).toBe('FORBIDDEN');
      const garbage = await agentA.request('virt.v1.b.peer.migration.check', '{not json', { timeout: 10_000 });
      expect(garbage.json<{ error?: { code: string } }>().error?.code).toBe('INVALID_ARG');
      const finish = await agentA.request('virt.v1.b.peer.migration.finish', JSON.stringify({ migrationId: prepare.migrationId, uuid: config.uuid, resume: true }), { timeout: 10_000 });
      expect(finish.json<{ error?: { code: string } }>().error?.code).toBe('FORBIDDEN');
    } finally {
      await agentA.close();
    }
    expect((await call('GET', '/v1/nodes/b/domains/planted', { token: adminToken.token })).status).toBe(404);
    const logged = agents[1]!.output()
      .split('\n')
      .filter((line) => line.includes('peer migration request') && line.includes('0b6c5f3e-5d2a-4c1e-9a53-6f1d2a7b8c90'));
    expect(logged.some((line) => line.includes('"verb":"prepare"') && line.includes('"source":"a"') && line.includes('FORBIDDEN'))).toBe(true);
    expect(logged.some((line) => line.includes('"verb":"finish"') && line.includes('FORBIDDEN'))).toBe(true);
  });

  it('writes every mutating call to the audit file and publishes it on the bus', async () => {
    await sleep(200);
    const lines = (await readFile(auditFile, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as AuditRecord);
    for (const record of lines) expect(auditRecordValidator.check(record)).toBe(true);
    const summary = lines.map((r) => [r.identity, r.action, r.node, r.object, r.status, r.errorCode ?? null]);
    expect(summary).toContainEqual(['root', 'POST /v1/nodes/:node/domains', 'a', null, 201, null]);
    expect(summary).toContainEqual(['ops', 'PUT /v1/nodes/:node/domains/:id/state', 'a', 'web1', 200, null]);
    expect(summary).toContainEqual(['viewer', 'PUT /v1/nodes/:node/domains/:id/state', 'a', 'anything', 403, 'FORBIDDEN']);
    expect(summary).toContainEqual(['ops-a', 'PUT /v1/nodes/:node/domains/:id/state', 'b', 'x', 403, 'FORBIDDEN']);
    expect(summary).toContainEqual(['readonly', 'PUT /v1/nodes/:node/domains/:id/state', 'a', 'web1', 403, 'FORBIDDEN']);
    // GETs are not audited
    expect(lines.every((r) => !r.action.startsWith('GET'))).toBe(true);
    const ok = lines.find((r) => r.identity === 'ops' && r.status === 200);
    expect(ok).toMatchObject({ role: 'operator', via: 'token', result: 'ok' });
    await waitFor('the audit records on the bus', () => busAudit.length >= lines.length, 30_000);
    expect(busAudit.map((r) => [r.identity, r.action, r.status])).toEqual(lines.map((r) => [r.identity, r.action, r.status]));
  });

  it('agent b started against the stream agent a created, which it may not update, and serves', async () => {
    expect((await call('GET', '/v1/nodes/b', { token: viewer.token })).status).toBe(200);
    expect(agents[1]!.output()).toContain('no permission to update the event stream limits');
    expect(agents.every((agent) => !/Permissions Violation/.test(agent.output()))).toBe(true);
  });
});

describe('gateway start-up policy and rate limit', () => {
  it('refuses plaintext on a non-loopback address unless forced', async () => {
    await expect(startGateway({ nc: {} as NatsConnection, host: '0.0.0.0', port: 0 })).rejects.toThrow(/refusing to listen on 0\.0\.0\.0 without TLS/);
    await expect(startGateway({ nc: {} as NatsConnection, host: '::', port: 0 })).rejects.toThrow(/refusing to listen/);
  });

  it('the gateway process exits non-zero with the refusal message', async () => {
    const result = spawnSync(process.execPath, [builtBundle('virtbus-gateway'), '--config', 'none', '--host', '0.0.0.0', '--port', '0'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('refusing to listen on 0.0.0.0 without TLS');
  });

  it('rate-limits unauthenticated callers too (per client address): 401 within the burst, then 429', async () => {
    const app = await buildApp({ nc: () => Promise.reject(new Error('no bus')), security: { tokens: [], rateLimitPerSecond: 1 } });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await app.inject({ method: 'GET', url: '/v1/nodes', headers: i % 2 ? { authorization: 'Bearer vbt_garbage' } : {} })).statusCode);
    expect(statuses).toEqual([401, 401, 429, 429]);
    await app.close();
  });

  it('answers 429 RATE_LIMITED with Retry-After past the burst', async () => {
    const app = await buildApp({ nc: () => Promise.reject(new Error('no bus')), security: { rateLimitPerSecond: 1 } });
    const statuses: number[] = [];
    let last;
    for (let i = 0; i < 4; i++) {
      last = await app.inject({ method: 'GET', url: '/v1/nodes/a%20b/domains' });
      statuses.push(last.statusCode);
    }
    expect(statuses.slice(0, 2)).toEqual([400, 400]);
    expect(statuses.slice(2)).toEqual([429, 429]);
    expect(last?.json()).toMatchObject({ code: 'RATE_LIMITED', status: 429 });
    expect(Number(last?.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    await app.close();
  });
});

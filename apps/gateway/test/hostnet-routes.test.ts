import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createToken } from '@virtbus/security';
import { addTestNetns, hasBinaryOrSkip, removeTestNetns, spawnAgent, startNatsServer, type AgentProcess, type NatsServerHandle } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type GatewayApp } from '../src/index.js';

const NODE = 'hnet';
const netns = `vbt-gw-${randomBytes(4).toString('hex')}`;
const viewer = createToken({ name: 'viewer', role: 'read-only' });
const admin = createToken({ name: 'root', role: 'admin' });
const as = (token: { token: string }) => ({ authorization: `Bearer ${token.token}` });

describe.skipIf(!hasBinaryOrSkip('ip') || !hasBinaryOrSkip('nsenter'))('gateway: host interface and firewall routes by role', () => {
  let dir: string;
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let agent: AgentProcess | undefined;
  let app: GatewayApp;

  beforeAll(async () => {
    addTestNetns(netns);
    dir = await mkdtemp(join(tmpdir(), 'virtbus-hnet-'));
    nats = await startNatsServer();
    agent = await spawnAgent({ node: NODE, natsUrl: nats.url, stateDir: join(dir, 'state'), extraArgs: ['--netns', netns], env: { VIRTBUS_STATS_INTERVAL: '0' } });
    nc = await connect({ servers: nats.url });
    app = await buildApp({ nc, discoveryWaitMs: 50, security: { tokens: [viewer.record, admin.record] } });
    await app.ready();
  });

  afterAll(async () => {
    await app?.close();
    await nc?.close();
    await agent?.stop();
    await nats?.stop();
    removeTestNetns(netns);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('lets read-only list interfaces and rule sets, and only admin configure them', async () => {
    const list = await app.inject({ method: 'GET', url: `/v1/nodes/${NODE}/interfaces`, headers: as(viewer) });
    expect(list.statusCode).toBe(200);
    expect((list.json() as { interfaces: { name: string }[] }).interfaces.map((i) => i.name)).toEqual(['lo']);
    expect((await app.inject({ method: 'GET', url: `/v1/nodes/${NODE}/interfaces/lo`, headers: as(viewer) })).json()).toMatchObject({ name: 'lo', kind: 'loopback' });
    expect((await app.inject({ method: 'POST', url: `/v1/nodes/${NODE}/interfaces/transaction`, headers: as(viewer), payload: {} })).statusCode).toBe(403);
    expect((await app.inject({ method: 'POST', url: `/v1/nodes/${NODE}/interfaces/changes`, headers: as(viewer), payload: { changes: [{ action: 'set', name: 'lo', up: false }] } })).statusCode).toBe(403);

    const begun = await app.inject({ method: 'POST', url: `/v1/nodes/${NODE}/interfaces/transaction`, headers: as(admin), payload: { timeoutSeconds: 60 } });
    expect(begun.statusCode).toBe(201);
    expect((await app.inject({ method: 'POST', url: `/v1/nodes/${NODE}/interfaces/transaction`, headers: as(admin), payload: {} })).json()).toMatchObject({ code: 'OPERATION_INVALID', status: 409 });
    const changed = await app.inject({ method: 'POST', url: `/v1/nodes/${NODE}/interfaces/changes`, headers: as(admin), payload: { changes: [{ action: 'create-bridge', name: 'vbgw0' }] } });
    expect(changed.statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: `/v1/nodes/${NODE}/interfaces/transaction`, headers: as(viewer) })).json()).toMatchObject({ transaction: { changes: 1 } });
    expect((await app.inject({ method: 'POST', url: `/v1/nodes/${NODE}/interfaces/transaction/rollback`, headers: as(admin) })).statusCode).toBe(200);
    expect(execFileSync('ip', ['-n', netns, '-j', 'link'], { encoding: 'utf8' })).not.toContain('vbgw0');

    const ruleSet = { name: 'web', rules: [{ action: 'allow', direction: 'in', protocol: 'tcp', destinationPorts: ['80', '443'] }] };
    expect((await app.inject({ method: 'POST', url: `/v1/nodes/${NODE}/firewall/rulesets`, headers: as(viewer), payload: ruleSet })).statusCode).toBe(403);
    const defined = await app.inject({ method: 'POST', url: `/v1/nodes/${NODE}/firewall/rulesets`, headers: as(admin), payload: ruleSet });
    expect(defined.statusCode).toBe(201);
    const bad = await app.inject({ method: 'PUT', url: `/v1/nodes/${NODE}/firewall/rulesets/web`, headers: as(admin), payload: { rules: [{ action: 'drop', direction: 'in', source: ['10.0.0.0/40'] }] } });
    expect(bad.json()).toMatchObject({ code: 'INVALID_ARG', status: 400 });
    const listed = await app.inject({ method: 'GET', url: `/v1/nodes/${NODE}/firewall/rulesets`, headers: as(viewer) });
    expect(listed.json()).toMatchObject({ ruleSets: [{ name: 'web', bindings: [], rules: ruleSet.rules }] });
    expect((await app.inject({ method: 'DELETE', url: `/v1/nodes/${NODE}/firewall/rulesets/web`, headers: as(viewer) })).statusCode).toBe(403);
    expect((await app.inject({ method: 'DELETE', url: `/v1/nodes/${NODE}/firewall/rulesets/web`, headers: as(admin) })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: `/v1/nodes/${NODE}/firewall/rulesets/web`, headers: as(viewer) })).statusCode).toBe(404);
  });
});

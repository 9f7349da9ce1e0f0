import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kvm } from '@nats-io/kv';
import { NODES_BUCKET, type DomainSnapshot } from '@virtbus/api-contract';
import { tearDown, useNatsBus } from '@virtbus/testing';
import { buildApp, type GatewayApp } from '../src/index.js';
import { sampleDomain, startFakeAgent, type FakeAgent } from './fake-agent.js';

const NODE = 'snaphost';
const UUID = '6f1c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f';
const snapshot: DomainSnapshot = {
  name: 's1',
  domain: UUID,
  kind: 'external',
  state: 'running',
  memory: false,
  children: [],
  current: true,
  createdAt: '2026-01-01T00:00:00.000Z',
  disks: [{ target: 'vda', file: '/d/a.qcow2', overlay: '/d/web1-vda.s1.qcow2' }],
};

const bus = useNatsBus();
let agent: FakeAgent;
let app: GatewayApp;

beforeAll(async () => {
  await (await new Kvm(bus.nc).create(NODES_BUCKET)).put(NODE, JSON.stringify({ node: NODE, version: '0.0.1-test', registeredAt: '2025-01-01T00:00:00.000Z' }));
  agent = await startFakeAgent(bus.nc, NODE);
  agent.handle('domain.snapshot.create', () => ({ result: snapshot }));
  agent.handle('domain.snapshot.list', () => ({ result: { snapshots: [snapshot], current: 's1' } }));
  agent.handle('domain.snapshot.revert', () => ({ result: sampleDomain(NODE, { state: 'running', reason: 'from_snapshot' }) }));
  agent.handle('domain.snapshot.delete', () => ({ result: { deleted: ['s1'] } }));
  agent.handle('domain.save', () => ({ result: sampleDomain(NODE, { state: 'shutoff', reason: 'saved' }) }));
  agent.handle('domain.restore', () => ({ result: sampleDomain(NODE, { state: 'running', reason: 'restored' }) }));
  agent.handle('domain.managedsave.get', () => ({ result: { domain: UUID, present: false } }));
  app = await buildApp({ nc: bus.nc, requestTimeoutMs: 2000, discoveryWaitMs: 500 });
});

afterAll(() => tearDown(app, agent));

const lastRequest = () => agent.calls.at(-1)?.request;

describe('snapshot and save/restore routes', () => {
  it('forwards each route to its agent operation with the body, params and query it took', async () => {
    let response = await app.inject({ method: 'POST', url: `/v1/nodes/${NODE}/domains/web1/snapshots`, payload: { name: 's1', kind: 'external' } });
    expect(response.statusCode).toBe(201);
    expect(lastRequest()).toEqual({ id: 'web1', snapshot: { name: 's1', kind: 'external' } });
    response = await app.inject({ method: 'GET', url: `/v1/nodes/${NODE}/domains/web1/snapshots` });
    expect(response.json()).toMatchObject({ current: 's1', snapshots: [{ name: 's1' }] });
    response = await app.inject({ method: 'POST', url: `/v1/nodes/${NODE}/domains/web1/snapshots/s1/revert` });
    expect(response.json()).toMatchObject({ reason: 'from_snapshot' });
    response = await app.inject({ method: 'DELETE', url: `/v1/nodes/${NODE}/domains/web1/snapshots/s1?mode=children&metadataOnly=true` });
    expect(response.statusCode).toBe(200);
    expect(lastRequest()).toEqual({ id: 'web1', snapshot: 's1', options: { mode: 'children', metadataOnly: true } });
    response = await app.inject({ method: 'POST', url: `/v1/nodes/${NODE}/domains/web1/save`, payload: { pool: 'default', volume: 'web1.save' } });
    expect(response.json()).toMatchObject({ state: 'shutoff', reason: 'saved' });
    response = await app.inject({ method: 'POST', url: `/v1/nodes/${NODE}/restore`, payload: { pool: 'default', volume: 'web1.save' } });
    expect(response.json()).toMatchObject({ reason: 'restored' });
    expect(lastRequest()).toEqual({ pool: 'default', volume: 'web1.save' });
    response = await app.inject({ method: 'GET', url: `/v1/nodes/${NODE}/domains/web1/managed-save` });
    expect(response.json()).toEqual({ domain: UUID, present: false });
  });

  it('rejects malformed snapshot names and delete modes before calling the agent', async () => {
    const before = agent.calls.length;
    expect((await app.inject({ method: 'POST', url: `/v1/nodes/${NODE}/domains/web1/snapshots`, payload: { name: '../x' } })).statusCode).toBe(400);
    expect((await app.inject({ method: 'DELETE', url: `/v1/nodes/${NODE}/domains/web1/snapshots/s1?mode=everything` })).statusCode).toBe(400);
    expect(agent.calls.length).toBe(before);
  });
});

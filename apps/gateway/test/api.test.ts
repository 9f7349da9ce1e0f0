import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { CallerIdentity, ConsoleHeaders, NODES_BUCKET, Subjects, compileValidator, type ErrorBody, type NodeInfo } from '@virtbus/api-contract';
import { tearDown, useNatsBus } from '@virtbus/testing';
import { buildApp, type GatewayApp } from '../src/index.js';
import { sampleDomain, startFakeAgent, type FakeAgent } from './fake-agent.js';

const NODE = 'host1';
const OFFLINE_NODE = 'host2';
const REQUEST_TIMEOUT_MS = 500;
const CONSOLE_UUID = '6f1c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f';

const nodeInfo: NodeInfo = {
  node: NODE,
  hostname: 'host1.test',
  agentVersion: '0.0.1-test',
  apiVersion: 'v1',
  startedAt: '2025-01-01T00:00:00.000Z',
  cpu: { model: 'qemu64', count: 2, sockets: 1, coresPerSocket: 2, threadsPerCore: 1, mhz: 2000 },
  memory: { totalBytes: 1024, freeBytes: 512, availableBytes: 768 },
  numa: [{ id: 0, cpus: [0, 1], memoryTotalBytes: 1024, memoryFreeBytes: 512 }],
  drivers: [{ name: 'test', domainTypes: ['test'], available: true, capabilities: [] }],
};

/** A domain whose disk, NIC and graphics leave every optional field out, as an agent may store it. */
const bareDomain = sampleDomain(NODE, { name: 'bare', config: { ...sampleDomain(NODE).config, name: 'bare', disks: [{ source: { path: '/images/bare.img' } }], nics: [{ type: 'user' }], graphics: { type: 'vnc' } } });

const bus = useNatsBus();
let agent: FakeAgent;
let app: GatewayApp;

beforeAll(async () => {
  const kv = await new Kvm(bus.nc).create(NODES_BUCKET);
  await kv.put(OFFLINE_NODE, JSON.stringify({ node: OFFLINE_NODE, version: '0.0.0-old', registeredAt: '2025-01-01T00:00:00.000Z' }));
  agent = await startFakeAgent(bus.nc, NODE);
  agent.handle('node.info', () => ({ result: nodeInfo }));
  agent.handle('domain.list', () => ({ result: { domains: [sampleDomain(NODE)] } }));
  agent.handle('domain.get', (request) => {
    const { id } = request as { id: string };
    // running: its console stays open
    if (id === 'web1') return { result: sampleDomain(NODE, { state: 'running', reason: 'booted' }) };
    if (id === 'idle1') return { result: sampleDomain(NODE, { name: 'idle1' }) };
    if (id === 'bare') return { result: bareDomain };
    if (id === 'slow') return 'silent';
    if (id === 'broken') return { result: { ...sampleDomain(NODE), state: 'exploded' } };
    return { error: { code: 'NO_DOMAIN', message: `no domain ${id}`, status: 404 } };
  });
  agent.handle('domain.define', (request) => ({ result: sampleDomain(NODE, { name: (request as { name: string }).name }) }));
  agent.handle('domain.undefine', () => ({ result: sampleDomain(NODE) }));
  agent.handle('domain.state', () => ({ result: sampleDomain(NODE, { state: 'running', reason: 'booted' }) }));
  agent.handle('domain.exec', () => ({ result: { exitCode: 0, stdout: 'hi\n', stderr: '', timedOut: false } }));
  agent.handle('domain.update', () => ({ error: { code: 'OPERATION_INVALID', message: 'domain is running', status: 409 } }));
  agent.handle('domain.console.attach', (request) => {
    const { id } = request as { id: string };
    if (id === 'busy') return { error: { code: 'OPERATION_INVALID', message: 'another client holds the console', status: 409 } };
    return { result: { session: 'writer-1', history: Buffer.from('boot log\n').toString('base64'), subject: Subjects.consoleOutput(NODE, CONSOLE_UUID) } };
  });
  agent.handle('domain.console.write', () => ({ result: {} }));
  agent.handle('domain.console.detach', () => ({ result: {} }));
  app = await buildApp({ nc: bus.nc, requestTimeoutMs: REQUEST_TIMEOUT_MS, bodyLimit: 64 * 1024, discoveryWaitMs: 500 });
});

afterAll(() => tearDown(app, agent));

function errorOf(response: { json(): unknown }): ErrorBody {
  return response.json() as ErrorBody;
}

describe('routing to agents', () => {
  it('lists live agents and registered nodes that are offline', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/nodes' });
    expect(response.statusCode).toBe(200);
    const { nodes } = response.json() as { nodes: Array<{ node: string; online: boolean; version: string; id: string }> };
    expect(nodes.map((n) => [n.node, n.online, n.version])).toEqual([
      [NODE, true, '0.0.1-test'],
      [OFFLINE_NODE, false, '0.0.0-old'],
    ]);
    expect(nodes[0]?.id).not.toBe('');
  });

  it('returns node info and domain lists from the agent', async () => {
    const info = await app.inject({ method: 'GET', url: `/v1/nodes/${NODE}` });
    expect(info.statusCode).toBe(200);
    expect(info.json()).toEqual(nodeInfo);
    const list = await app.inject({ method: 'GET', url: `/v1/nodes/${NODE}/domains` });
    expect(list.statusCode).toBe(200);
    expect((list.json() as { domains: unknown[] }).domains).toHaveLength(1);
  });

  it('answers a domain as the agent sent it, writing no schema default into the reply', async () => {
    const response = await app.inject({ method: 'GET', url: `/v1/nodes/${NODE}/domains/bare` });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual(bareDomain);
  });

  it('tells a loopback caller without credentials who it is, in the contract CallerIdentity', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/whoami' });
    expect(response.statusCode).toBe(200);
    expect(compileValidator(CallerIdentity).check(response.json())).toBe(true);
    expect(response.json()).toEqual({ name: 'loopback-dev', role: 'admin', nodes: 'all', via: 'loopback-dev' });
  });

  it('answers 404 NO_NODE for a node nobody knows', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/nodes/ghost/domains' });
    expect(response.statusCode).toBe(404);
    expect(errorOf(response)).toMatchObject({ code: 'NO_NODE', status: 404 });
  });

  it('answers 503 AGENT_UNREACHABLE for a registered node without a responder', async () => {
    const response = await app.inject({ method: 'GET', url: `/v1/nodes/${OFFLINE_NODE}/domains` });
    expect(response.statusCode).toBe(503);
    expect(errorOf(response)).toMatchObject({ code: 'AGENT_UNREACHABLE', status: 503 });
  });

  it('answers 504 OPERATION_TIMEOUT when the agent never replies', async () => {
    const response = await app.inject({ method: 'GET', url: `/v1/nodes/${NODE}/domains/slow` });
    expect(response.statusCode).toBe(504);
    expect(errorOf(response)).toMatchObject({ code: 'OPERATION_TIMEOUT', status: 504 });
  });

  it('maps an error envelope to its status and body', async () => {
    const missing = await app.inject({ method: 'GET', url: `/v1/nodes/${NODE}/domains/nothere` });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ code: 'NO_DOMAIN', message: 'no domain nothere', status: 404 });
    const invalid = await app.inject({ method: 'PUT', url: `/v1/nodes/${NODE}/domains/web1`, payload: { vcpus: 2 } });
    expect(invalid.statusCode).toBe(409);
    expect(errorOf(invalid)).toMatchObject({ code: 'OPERATION_INVALID' });
    const unsupported = await app.inject({ method: 'GET', url: `/v1/nodes/${NODE}/domains/web1/stats` });
    expect(unsupported.statusCode).toBe(501);
    expect(errorOf(unsupported)).toMatchObject({ code: 'OPERATION_UNSUPPORTED' });
  });

  it('refuses a reply that breaks the contract with 500 INTERNAL', async () => {
    const response = await app.inject({ method: 'GET', url: `/v1/nodes/${NODE}/domains/broken` });
    expect(response.statusCode).toBe(500);
    expect(errorOf(response)).toMatchObject({ code: 'INTERNAL' });
    expect(errorOf(response).message).toContain('breaks the contract');
  });

  it('forwards requests as the operation payloads', async () => {
    const before = agent.calls.length;
    const created = await app.inject({ method: 'POST', url: `/v1/nodes/${NODE}/domains`, payload: { name: 'db1', driver: 'test', vcpus: 2 } });
    expect(created.statusCode).toBe(201);
    expect((created.json() as { name: string }).name).toBe('db1');
    const state = await app.inject({ method: 'PUT', url: `/v1/nodes/${NODE}/domains/db1/state`, payload: { action: 'start' } });
    expect(state.statusCode).toBe(200);
    expect((state.json() as { state: string }).state).toBe('running');
    const exec = await app.inject({ method: 'POST', url: `/v1/nodes/${NODE}/domains/db1/exec`, payload: { command: ['echo', 'hi'] } });
    expect(exec.json()).toEqual({ exitCode: 0, stdout: 'hi\n', stderr: '', timedOut: false });
    const removed = await app.inject({ method: 'DELETE', url: `/v1/nodes/${NODE}/domains/web1` });
    expect(removed.statusCode).toBe(200);
    expect(agent.calls.slice(before).map((c) => [c.operation, c.request])).toEqual([
      ['domain.define', { name: 'db1', driver: 'test', vcpus: 2 }],
      ['domain.state', { id: 'db1', change: { action: 'start' } }],
      ['domain.exec', { id: 'db1', exec: { command: ['echo', 'hi'] } }],
      ['domain.undefine', { id: 'web1' }],
    ]);
  });
});

describe('input validation (the agent is never called)', () => {
  type Request = { method: 'GET' | 'POST' | 'PUT'; url: string; payload?: string | Record<string, unknown>; headers?: Record<string, string> };
  const rejected: Array<[string, Request, number, string]> = [
    ['a wrong body type', { method: 'POST', url: `/v1/nodes/${NODE}/domains`, payload: { name: 'x', driver: 'test', vcpus: '2' } }, 400, '/vcpus'],
    ['an unknown body field', { method: 'POST', url: `/v1/nodes/${NODE}/domains`, payload: { name: 'x', driver: 'test', colour: 'red' } }, 400, 'colour'],
    ['an unknown nested field', { method: 'PUT', url: `/v1/nodes/${NODE}/domains/web1`, payload: { os: { kernel: '/k', extra: 1 } } }, 400, 'extra'],
    ['a missing required field', { method: 'POST', url: `/v1/nodes/${NODE}/domains`, payload: { name: 'x' } }, 400, 'driver'],
    ['an unknown state action', { method: 'PUT', url: `/v1/nodes/${NODE}/domains/web1/state`, payload: { action: 'explode' } }, 400, '/action'],
    ['a domain name with ..', { method: 'POST', url: `/v1/nodes/${NODE}/domains`, payload: { name: 'a..b', driver: 'test' } }, 400, '/name'],
    ['invalid JSON', { method: 'POST', url: `/v1/nodes/${NODE}/domains`, payload: '{"name":', headers: { 'content-type': 'application/json' } }, 400, 'JSON'],
    ['an unsupported media type', { method: 'POST', url: `/v1/nodes/${NODE}/domains`, payload: 'name=x', headers: { 'content-type': 'text/plain' } }, 400, 'content type'],
    ['a missing body', { method: 'POST', url: `/v1/nodes/${NODE}/domains` }, 400, 'body'],
    ['a body over the limit', { method: 'POST', url: `/v1/nodes/${NODE}/domains`, payload: { name: 'x', driver: 'test', os: { cmdline: 'a'.repeat(70_000) } } }, 413, 'limit'],
    ['a node name with a dot', { method: 'GET', url: '/v1/nodes/a.b/domains' }, 400, '/node'],
    ['a node name with *', { method: 'GET', url: '/v1/nodes/*/domains' }, 400, '/node'],
    ['a node name with >', { method: 'GET', url: '/v1/nodes/%3E/domains' }, 400, '/node'],
    ['a node name with a space', { method: 'GET', url: '/v1/nodes/a%20b' }, 400, '/node'],
    ['a domain id with /', { method: 'GET', url: `/v1/nodes/${NODE}/domains/a%2Fb` }, 400, '/id'],
    ['a domain id containing ..', { method: 'GET', url: `/v1/nodes/${NODE}/domains/a..b` }, 400, '/id'],
    ['a domain id escaping with ../', { method: 'GET', url: `/v1/nodes/${NODE}/domains/..%2Fetc` }, 400, '/id'],
    ['a domain id with a control character', { method: 'GET', url: `/v1/nodes/${NODE}/domains/a%00b` }, 400, '/id'],
    ['a domain id with a newline', { method: 'GET', url: `/v1/nodes/${NODE}/domains/a%0Ab` }, 400, '/id'],
    ['an unknown query parameter', { method: 'GET', url: '/v1/events?colour=red' }, 400, 'colour'],
    ['an events filter by domain name', { method: 'GET', url: '/v1/events?domain=web1' }, 400, '/domain'],
  ];

  it.each(rejected)('rejects %s', async (_what, request, status, mention) => {
    const before = agent.calls.length;
    const response = await app.inject(request);
    expect(response.statusCode).toBe(status);
    const body = errorOf(response);
    expect(body).toMatchObject({ code: status === 413 ? 'PAYLOAD_TOO_LARGE' : 'INVALID_ARG', status });
    expect(body.message).toContain(mention);
    expect(agent.calls.length).toBe(before);
  });

  it('answers unknown routes with 404 NOT_FOUND', async () => {
    const response = await app.inject({ method: 'GET', url: '/v2/nothing' });
    expect(response.statusCode).toBe(404);
    expect(errorOf(response)).toMatchObject({ code: 'NOT_FOUND', status: 404 });
  });
});

describe('documentation', () => {
  it('serves the OpenAPI document and swagger-ui from local assets', async () => {
    const doc = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(doc.statusCode).toBe(200);
    const openapi = doc.json() as { openapi: string; paths: Record<string, Record<string, { operationId?: string }>> };
    expect(openapi.openapi).toMatch(/^3\./);
    expect(openapi.paths['/v1/nodes/{node}/domains/{id}/state']?.['put']?.operationId).toBe('changeDomainState');
    const ui = await app.inject({ method: 'GET', url: '/docs/' });
    expect(ui.statusCode).toBe(200);
    expect(ui.body).not.toMatch(/https?:\/\/(unpkg|cdn)/);
    const asset = await app.inject({ method: 'GET', url: '/docs/static/swagger-ui-bundle.js' });
    expect(asset.statusCode).toBe(200);
  });
});

async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The client end of an injected WebSocket (ws ships no types here). */
interface TestSocket {
  on(event: 'message', listener: (data: Buffer) => void): void;
  on(event: 'close', listener: (code: number, reason: Buffer) => void): void;
  send(data: string | Buffer): void;
  close(): void;
  terminate(): void;
}

describe('console WebSocket', () => {
  it('sends history then live output, forwards keystrokes and detaches on close', async () => {
    const received: string[] = [];
    const socket = (await app.injectWS(`/v1/nodes/${NODE}/domains/web1/console`)) as TestSocket;
    socket.on('message', (data) => received.push(data.toString()));
    await eventually(() => received.length === 1, 'the history');
    expect(received).toEqual(['boot log\n']);
    bus.nc.publish(Subjects.consoleOutput(NODE, CONSOLE_UUID), 'login: ');
    await eventually(() => received.length === 2, 'live output');
    expect(received[1]).toBe('login: ');
    socket.send('root\n');
    await eventually(() => agent.calls.some((c) => c.operation === 'domain.console.write'), 'the keystrokes');
    expect(agent.calls.find((c) => c.operation === 'domain.console.write')?.request).toEqual({
      id: 'web1',
      session: 'writer-1',
      data: Buffer.from('root\n').toString('base64'),
    });
    // injectWS has no TCP socket to finish a close handshake on; terminate drops it like a lost connection.
    socket.terminate();
    await eventually(() => agent.calls.some((c) => c.operation === 'domain.console.detach'), 'the detach');
    expect(agent.calls.find((c) => c.operation === 'domain.console.detach')?.request).toEqual({ id: 'web1', session: 'writer-1' });
  });

  it('closes with 1000 and the reason when the agent says the console ended (the domain stopped)', async () => {
    const received: string[] = [];
    const socket = (await app.injectWS(`/v1/nodes/${NODE}/domains/web1/console`)) as TestSocket;
    socket.on('message', (data) => received.push(data.toString()));
    const closed = new Promise<[number, string]>((resolve) => socket.on('close', (c, r) => resolve([c, r.toString()])));
    await eventually(() => received.length === 1, 'the history');
    // the running check after the subscription is done once domain.get was asked
    await eventually(() => agent.calls.filter((c) => c.operation === 'domain.get').length > 0, 'the state check');
    const headers = natsHeaders();
    headers.set(ConsoleHeaders.End, 'domain web1 stopped (destroyed)');
    bus.nc.publish(Subjects.consoleOutput(NODE, CONSOLE_UUID), new Uint8Array(0), { headers });
    expect(await closed).toEqual([1000, 'domain web1 stopped (destroyed)']);
    expect(received).toEqual(['boot log\n']);
  });

  it('closes with 1000 at once when the domain is not running', async () => {
    const socket = (await app.injectWS(`/v1/nodes/${NODE}/domains/idle1/console`)) as TestSocket;
    const [code, reason] = await new Promise<[number, string]>((resolve) => socket.on('close', (c, r) => resolve([c, r.toString()])));
    expect([code, reason]).toEqual([1000, 'domain idle1 is shutoff']);
  });

  it('closes with 4000 + status when another writer holds the console', async () => {
    const socket = (await app.injectWS(`/v1/nodes/${NODE}/domains/busy/console`)) as TestSocket;
    const [code, reason] = await new Promise<[number, string]>((resolve) => socket.on('close', (c, r) => resolve([c, r.toString()])));
    expect(code).toBe(4409);
    expect(reason).toMatch(/^OPERATION_INVALID: /);
  });
});

describe('trace context', () => {
  it('passes the injector to every agent request', async () => {
    const traced = await buildApp({ nc: bus.nc, injectTrace: (headers) => headers.set('traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01') });
    try {
      const before = agent.calls.length;
      await traced.inject({ method: 'GET', url: `/v1/nodes/${NODE}` });
      expect(agent.calls[before]?.headers['traceparent']).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    } finally {
      await traced.close();
    }
  });
});

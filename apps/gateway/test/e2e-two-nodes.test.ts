import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { sseMessages, type Domain, type LifecycleEvent } from '@virtbus/api-contract';
import { type AgentProcess, collectBusEvents, type NatsServerHandle, spawnAgent, startNatsServer } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../src/index.js';

let nats: NatsServerHandle;
let gateway: RunningGateway;
let nc: NatsConnection;
let workDir: string;
const agents = new Map<string, AgentProcess>();
const busEvents: LifecycleEvent[] = [];

async function api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${gateway.url}${path}`, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

interface SseMessage {
  id: number;
  event: LifecycleEvent;
}

/** Reads SSE messages from the gateway until `count` arrived (or the timeout), then disconnects. */
/** Opens an SSE stream; resolves once the gateway answered (its consumer exists: later events all arrive), with the first `count` messages to come. */
async function openSse(path: string, count: number, headers: Record<string, string> = {}, timeoutMs = 30_000): Promise<{ messages: Promise<SseMessage[]> }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const response = await fetch(`${gateway.url}${path}`, { headers, signal: controller.signal }).catch((error: unknown) => {
    clearTimeout(timer);
    throw error;
  });
  const read = async (): Promise<SseMessage[]> => {
    const messages: SseMessage[] = [];
    try {
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/text\/event-stream/);
      for await (const { id, data } of sseMessages(response.body as unknown as AsyncIterable<Uint8Array>)) {
        if (id && data) messages.push({ id: Number(id), event: JSON.parse(data) as LifecycleEvent });
        if (messages.length >= count) break;
      }
    } catch (error) {
      if ((error as Error).name !== 'AbortError') throw error;
    } finally {
      clearTimeout(timer);
      controller.abort();
    }
    return messages;
  };
  return { messages: read() };
}

async function readSse(path: string, count: number, headers: Record<string, string> = {}): Promise<SseMessage[]> {
  return (await openSse(path, count, headers)).messages;
}

async function listAllDomains(): Promise<Record<string, unknown>> {
  const result: Record<string, unknown> = {};
  for (const node of agents.keys()) result[node] = (await api('GET', `/v1/nodes/${node}/domains`)).body;
  return result;
}

async function stateFiles(): Promise<string[]> {
  const files: string[] = [];
  for (const node of agents.keys()) {
    const dir = join(workDir, node, 'domains');
    for (const file of await readdir(dir).catch(() => [])) files.push(`${node}/${file}:${await readFile(join(dir, file), 'utf8')}`);
  }
  return files.sort();
}

beforeAll(async () => {
  nats = await startNatsServer();
  workDir = await mkdtemp(join(tmpdir(), 'virtbus-e2e-'));
  nc = await connect({ servers: nats.url });
  collectBusEvents(nc, busEvents);
  for (const node of ['east', 'west']) {
    agents.set(node, await spawnAgent({ node, natsUrl: nats.url, stateDir: join(workDir, node) }));
  }
  gateway = await startGateway({ nc, host: '127.0.0.1', port: 0, heartbeatMs: 500, discoveryWaitMs: 500 });
});

afterAll(async () => {
  await gateway?.close();
  await Promise.all([...agents.values()].map((agent) => agent.stop()));
  await nc?.close();
  await nats?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe('gateway + two agents over a real NATS bus', () => {
  it('lists both live nodes and routes per node', async () => {
    const nodes = await api('GET', '/v1/nodes');
    expect(nodes.status).toBe(200);
    expect((nodes.body!.nodes as { node: string; online: boolean }[]).map((n) => [n.node, n.online])).toEqual([
      ['east', true],
      ['west', true],
    ]);
    const east = await api('GET', '/v1/nodes/east');
    expect(east.status).toBe(200);
    expect(east.body).toMatchObject({ node: 'east', apiVersion: 'v1' });
  });

  it('drives a full lifecycle over HTTP; the bus and the SSE stream see the same events in order', async () => {
    // only events after the stream opened come: the lifecycle starts once it has (a fixed 300 ms was a guess)
    const sse = (await openSse('/v1/events?node=east', 6)).messages;
    const created = await api('POST', '/v1/nodes/east/domains', { name: 'app-1', driver: 'test', vcpus: 2, memory: 512 });
    expect(created.status).toBe(201);
    const domain = created.body as unknown as Domain;
    expect(domain).toMatchObject({ name: 'app-1', node: 'east', state: 'shutoff' });
    expect((await api('GET', '/v1/nodes/west/domains/app-1')).status).toBe(404);

    for (const [action, state] of [
      ['start', 'running'],
      ['suspend', 'paused'],
      ['resume', 'running'],
      ['shutdown', 'shutoff'],
    ] as const) {
      const changed = await api('PUT', '/v1/nodes/east/domains/app-1/state', { action });
      expect(changed.status, action).toBe(200);
      expect(changed.body!.state).toBe(state);
    }
    const invalid = await api('PUT', '/v1/nodes/east/domains/app-1/state', { action: 'resume' });
    expect(invalid).toMatchObject({ status: 409, body: { code: 'OPERATION_INVALID', status: 409 } });

    const updated = await api('PUT', `/v1/nodes/east/domains/${domain.uuid}`, { vcpus: 4 });
    expect(updated.status).toBe(200);
    expect((updated.body!.config as { vcpus: number }).vcpus).toBe(4);

    const streamed = await sse;
    const expected = ['DEFINED/ADDED', 'STARTED/BOOTED', 'SUSPENDED/PAUSED', 'RESUMED/UNPAUSED', 'STOPPED/SHUTDOWN', 'DEFINED/UPDATED'];
    expect(streamed.map((m) => `${m.event.type}/${m.event.detail}`)).toEqual(expected);
    const ids = streamed.map((m) => m.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    const onBus = busEvents.filter((event) => event.uuid === domain.uuid);
    expect(onBus.map((event) => `${event.type}/${event.detail}`)).toEqual(expected);
    expect(onBus.map((event) => event.seq)).toEqual(streamed.map((m) => m.event.seq));
  });

  it('replays the stream after a reconnect with Last-Event-ID and with since, and filters by domain and type', async () => {
    const all = await readSse('/v1/events?since=0', 6);
    expect(all.length).toBe(6);
    const third = all[2]!;
    const resumed = await readSse('/v1/events', 3, { 'last-event-id': String(third.id) });
    expect(resumed.map((m) => m.id)).toEqual(all.slice(3, 6).map((m) => m.id));
    const bySince = await readSse(`/v1/events?since=${third.id}`, 3);
    expect(bySince.map((m) => m.id)).toEqual(resumed.map((m) => m.id));
    const started = await readSse(`/v1/events?since=0&type=STARTED&domain=${third.event.uuid}`, 1);
    expect(started.map((m) => m.event.type)).toEqual(['STARTED']);
  });

  it('keeps definitions across an agent restart and reports the down agent as 503, an unknown node as 404', async () => {
    const before = await api('GET', '/v1/nodes/east/domains/app-1');
    await agents.get('east')!.kill('SIGKILL');
    const down = await api('GET', '/v1/nodes/east/domains');
    expect(down).toMatchObject({ status: 503, body: { code: 'AGENT_UNREACHABLE' } });
    const unknown = await api('GET', '/v1/nodes/north/domains');
    expect(unknown).toMatchObject({ status: 404, body: { code: 'NO_NODE' } });
    const listed = await api('GET', '/v1/nodes');
    expect((listed.body!.nodes as { node: string; online: boolean }[]).find((n) => n.node === 'east')?.online).toBe(false);

    agents.set('east', await spawnAgent({ node: 'east', natsUrl: nats.url, stateDir: join(workDir, 'east') }));
    const after = await api('GET', '/v1/nodes/east/domains/app-1');
    expect(after.status).toBe(200);
    expect(after.body).toEqual(before.body);
  });

  it('rejects hostile input with a 4xx code and changes nothing', async () => {
    await api('POST', '/v1/nodes/west/domains', { name: 'keep', driver: 'test' });
    const beforeApi = await listAllDomains();
    const beforeDisk = await stateFiles();
    const cases: [string, string, unknown, number, string][] = [
      ['POST', '/v1/nodes/west/domains', { name: 'x', driver: 'test', vcpus: '2' }, 400, 'INVALID_ARG'],
      ['POST', '/v1/nodes/west/domains', { name: 'x', driver: 'test', extra: 1 }, 400, 'INVALID_ARG'],
      ['POST', '/v1/nodes/west/domains', { name: 'a/b', driver: 'test' }, 400, 'INVALID_ARG'],
      ['POST', '/v1/nodes/west/domains', { name: '..', driver: 'test' }, 400, 'INVALID_ARG'],
      ['POST', '/v1/nodes/west/domains', { name: 'x..y', driver: 'test' }, 400, 'INVALID_ARG'],
      ['POST', '/v1/nodes/west/domains', { name: 'new\nline', driver: 'test' }, 400, 'INVALID_ARG'],
      ['POST', '/v1/nodes/west/domains', { name: 'nul\u0000', driver: 'test' }, 400, 'INVALID_ARG'],
      ['POST', '/v1/nodes/west/domains', { name: 'x', driver: 'test', disks: [{ source: { path: 'relative.qcow2' } }] }, 400, 'INVALID_ARG'],
      ['POST', '/v1/nodes/west/domains', '{"name": "x", "driver":', 400, 'INVALID_ARG'],
      ['POST', '/v1/nodes/west/domains', { name: 'x', driver: 'test', os: { cmdline: 'a'.repeat(2 * 1024 * 1024) } }, 413, 'PAYLOAD_TOO_LARGE'],
      ['POST', '/v1/nodes/west/domains', { name: 'keep', driver: 'test' }, 409, 'DOMAIN_EXISTS'],
      ['GET', '/v1/nodes/we.st/domains', undefined, 400, 'INVALID_ARG'],
      ['GET', '/v1/nodes/*/domains', undefined, 400, 'INVALID_ARG'],
      ['GET', '/v1/nodes/%3E/domains', undefined, 400, 'INVALID_ARG'],
      ['GET', '/v1/nodes/west%20x/domains', undefined, 400, 'INVALID_ARG'],
      ['GET', '/v1/nodes/west/domains/..%2F..%2Fetc', undefined, 400, 'INVALID_ARG'],
      ['GET', '/v1/nodes/west/domains/%01ctrl', undefined, 400, 'INVALID_ARG'],
      ['PUT', '/v1/nodes/west/domains/keep', { vcpus: 0 }, 400, 'INVALID_ARG'],
      ['PUT', '/v1/nodes/west/domains/keep', { name: 'renamed' }, 400, 'INVALID_ARG'],
      ['PUT', '/v1/nodes/west/domains/keep/state', { action: 'explode' }, 400, 'INVALID_ARG'],
      ['PUT', '/v1/nodes/west/domains/keep/state', { action: 'start', timeout: -1 }, 400, 'INVALID_ARG'],
      ['DELETE', '/v1/nodes/west/domains/missing', undefined, 404, 'NO_DOMAIN'],
      ['GET', '/v1/nowhere', undefined, 404, 'NOT_FOUND'],
    ];
    for (const [method, path, body, status, code] of cases) {
      const response = await api(method, path, body);
      expect([response.status, response.body?.code], `${method} ${path} ${JSON.stringify(body)?.slice(0, 80)}`).toEqual([status, code]);
      expect(response.body).toMatchObject({ code, status });
    }
    expect(await listAllDomains()).toEqual(beforeApi);
    expect(await stateFiles()).toEqual(beforeDisk);
  });

  it('serves the OpenAPI document with every route', async () => {
    const doc = await api('GET', '/openapi.json');
    expect(doc.status).toBe(200);
    const paths = Object.keys(doc.body!.paths as object);
    for (const path of ['/v1/nodes', '/v1/nodes/{node}', '/v1/nodes/{node}/domains', '/v1/nodes/{node}/domains/{id}', '/v1/nodes/{node}/domains/{id}/state', '/v1/events']) {
      expect(paths).toContain(path);
    }
  });
});

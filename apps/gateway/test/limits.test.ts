import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request as httpRequest } from 'node:http';
import { connect as tcpConnect } from 'node:net';
import WebSocket from 'ws';
import { jetstreamManager } from '@nats-io/jetstream';
import { EVENTS_STREAM, Subjects } from '@virtbus/api-contract';
import { createToken } from '@virtbus/security';
import { tearDown, useNatsBus } from '@virtbus/testing';
import { startGateway, type RunningGateway } from '../src/index.js';
import { startFakeAgent, type FakeAgent } from './fake-agent.js';

const NODE = 'lim1';
const CONSOLE_UUID = '33333333-3333-4333-8333-333333333333';
const alice = createToken({ name: 'alice', role: 'operator' });
const bob = createToken({ name: 'bob', role: 'operator' });

const bus = useNatsBus();
let agent: FakeAgent;
let gateway: RunningGateway;

const auth = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

/** Opens an SSE stream and waits for its first bytes; abort() closes it. */
async function openStream(token: string): Promise<{ status: number; retryAfter: string | null; close: () => Promise<void> }> {
  const controller = new AbortController();
  const response = await fetch(`${gateway.url}/v1/events`, { headers: auth(token), signal: controller.signal });
  if (response.status === 200) await response.body!.getReader().read();
  else await response.text();
  return {
    status: response.status,
    retryAfter: response.headers.get('retry-after'),
    close: async () => controller.abort(),
  };
}

async function eventually(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A console WebSocket: resolves once open, or with the HTTP status of a refused upgrade. */
function openConsole(token: string): Promise<{ socket?: WebSocket; status: number; retryAfter?: string }> {
  const url = `${gateway.url.replace('http', 'ws')}/v1/nodes/${NODE}/domains/web1/console`;
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers: auth(token) });
    socket.once('open', () => resolve({ socket, status: 101 }));
    socket.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0, ...(res.headers['retry-after'] ? { retryAfter: String(res.headers['retry-after']) } : {}) });
      res.resume();
      socket.terminate();
    });
    socket.once('error', reject);
  });
}

function closed(socket: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

beforeAll(async () => {
  const nc = bus.nc;
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: EVENTS_STREAM, subjects: [Subjects.allEvents] });
  agent = await startFakeAgent(nc, NODE);
  agent.handle('domain.console.attach', () => ({ result: { session: 's1', history: '', subject: Subjects.consoleOutput(NODE, CONSOLE_UUID) } }));
  agent.handle('domain.console.write', () => ({ result: {} }));
  agent.handle('domain.console.detach', () => ({ result: {} }));
  gateway = await startGateway({
    nc,
    port: 0,
    security: { tokens: [alice.record, bob.record] },
    limits: {
      maxEventStreams: 3,
      maxEventStreamsPerIdentity: 2,
      maxConsoles: 2,
      maxConsolesPerIdentity: 1,
      consoleIdleTimeoutMs: 1000,
      bodyTimeoutMs: 300,
    },
  });
});

afterAll(() => tearDown(gateway, agent));

describe('event stream input', () => {
  it('answers 400 to a since beyond any stream sequence', async () => {
    const response = await fetch(`${gateway.url}/v1/events?since=99999999999999999999`, { headers: auth(alice.token) });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ code: 'INVALID_ARG' });
  });

  it('answers HEAD /v1/events at once instead of holding the connection', async () => {
    const response = await fetch(`${gateway.url}/v1/events`, { method: 'HEAD', headers: auth(alice.token) });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    expect(gateway.app.liveStreams.size).toBe(0);
  });
});

describe('body read deadline', () => {
  it('closes a connection whose JSON body does not arrive in time with 408', async () => {
    const url = new URL(gateway.url);
    const socket = tcpConnect(Number(url.port), url.hostname);
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write(
      `POST /v1/nodes/${NODE}/domains HTTP/1.1\r\nhost: ${url.host}\r\nauthorization: Bearer ${alice.token}\r\n` +
        'content-type: application/json\r\ncontent-length: 1000\r\n\r\n{"name":',
    );
    await ended;
    expect(received).toMatch(/^HTTP\/1\.1 408/);
  });

  it('still reads a body that arrives in time', async () => {
    agent.handle('domain.define', () => ({ error: { code: 'DOMAIN_EXISTS', message: 'exists', status: 409 } }));
    const url = new URL(gateway.url);
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: url.hostname, port: url.port, path: `/v1/nodes/${NODE}/domains`, method: 'POST', headers: { ...auth(alice.token), 'content-type': 'application/json' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end(JSON.stringify({ name: 'x', driver: 'test', memoryMiB: 64, vcpus: 1 }));
    });
    expect(status).not.toBe(408);
  });
});

describe('SSE stream caps', () => {
  it('refuses streams past the per-identity cap with 429 and Retry-After, and frees the slot on disconnect', async () => {
    const first = await openStream(alice.token);
    const second = await openStream(alice.token);
    expect([first.status, second.status]).toEqual([200, 200]);
    const third = await openStream(alice.token);
    expect(third.status).toBe(429);
    expect(Number(third.retryAfter)).toBeGreaterThan(0);
    await first.close();
    await eventually(async () => (await openStream(alice.token).then(async (s) => (s.status === 200 ? (await s.close(), true) : false))), 'a free slot');
    await second.close();
  });

  it('refuses streams past the global cap', async () => {
    await eventually(() => gateway.app.liveStreams.size === 0, 'streams closed');
    const streams = [await openStream(alice.token), await openStream(alice.token), await openStream(bob.token)];
    expect(streams.map((s) => s.status)).toEqual([200, 200, 200]);
    const over = await openStream(bob.token);
    expect(over.status).toBe(429);
    for (const stream of streams) await stream.close();
  });
});

describe('console caps and idle timeout', () => {
  it('refuses consoles past the per-identity and global caps with 429', async () => {
    await eventually(() => gateway.app.liveStreams.size === 0, 'streams closed');
    const first = await openConsole(alice.token);
    expect(first.status).toBe(101);
    const again = await openConsole(alice.token);
    expect(again.status).toBe(429);
    expect(Number(again.retryAfter)).toBeGreaterThan(0);
    const other = await openConsole(bob.token);
    expect(other.status).toBe(101);
    first.socket!.close();
    other.socket!.close();
  });

  it('closes a console without traffic either way with 4408 and a reason', async () => {
    await eventually(() => gateway.app.liveStreams.size === 0, 'consoles closed');
    const { socket } = await openConsole(bob.token);
    const result = await closed(socket!);
    expect(result.code).toBe(4408);
    expect(result.reason).toMatch(/^IDLE_TIMEOUT: /);
  });
});

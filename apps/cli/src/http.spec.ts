import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hasBinaryOrSkip } from '@virtbus/testing';
import { GatewayHttp } from './http.js';

let server: Server | undefined;
afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

/** A loopback gateway stand-in answering each request with the next canned status. */
async function gatewayAnswering(statuses: number[]): Promise<{ url: string; seen: IncomingHttpHeaders[] }> {
  const seen: IncomingHttpHeaders[] = [];
  server = createServer((request, response) => {
    seen.push(request.headers);
    request.resume();
    const status = statuses.shift() ?? 200;
    const body = status >= 400 ? { code: 'OPERATION_TIMEOUT', message: 'late', status } : { ok: true };
    response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

describe('GatewayHttp writes', () => {
  it('sends an Idempotency-Key and retries a 504 with the same key', async () => {
    const gateway = await gatewayAnswering([504, 201]);
    const http = new GatewayHttp({ url: gateway.url });
    expect(await http.json('POST', '/v1/nodes/n1/domains', { name: 'a' })).toEqual({ ok: true });
    expect(gateway.seen).toHaveLength(2);
    const [first, second] = gateway.seen.map((headers) => headers['idempotency-key']);
    expect(first).toMatch(/^[0-9a-f-]{36}$/);
    expect(second).toBe(first);
  });

  it('uses a fresh key per write and none for reads', async () => {
    const gateway = await gatewayAnswering([200, 200, 200]);
    const http = new GatewayHttp({ url: gateway.url });
    await http.json('PUT', '/v1/nodes/n1/domains/a/state', { action: 'start' });
    await http.json('PUT', '/v1/nodes/n1/domains/a/state', { action: 'start' });
    await http.json('GET', '/v1/nodes/n1/domains');
    const keys = gateway.seen.map((headers) => headers['idempotency-key']);
    expect(keys[0]).not.toBe(keys[1]);
    expect(keys[2]).toBeUndefined();
  });
});

describe.runIf(hasBinaryOrSkip('openssl'))('GatewayHttp over HTTPS (TLS loads only for an https URL)', () => {
  it('verifies the gateway against --ca and sends reads and writes over one TLS transport', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtbus-cli-tls-'));
    try {
      const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
      const methods: string[] = [];
      const tls = createHttpsServer({ cert: readFileSync(cert), key: readFileSync(key) }, (request, response) => {
        methods.push(`${request.method} ${request.headers['idempotency-key'] ? 'keyed' : 'plain'}`);
        request.resume();
        response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      });
      server = tls as unknown as Server;
      await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
      const url = `https://127.0.0.1:${(tls.address() as AddressInfo).port}`;
      const http = new GatewayHttp({ url, caFile: cert });
      expect(await http.json('GET', '/v1/nodes')).toEqual({ ok: true });
      expect(await http.json('POST', '/v1/nodes/n1/domains', { name: 'a' })).toEqual({ ok: true });
      expect(methods).toEqual(['GET plain', 'POST keyed']);
      await expect(new GatewayHttp({ url }).json('GET', '/v1/nodes')).rejects.toThrow(/cannot reach the gateway.*self-signed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('GatewayHttp uploads', () => {
  it('stops sending and ends its connection once the gateway refused the upload (no half-sent body left on a kept-alive socket)', async () => {
    let closed: () => void = () => undefined;
    const socketClosed = new Promise<void>((resolve) => (closed = resolve));
    // answers before reading the body, as the gateway does when the volume does not exist
    server = createServer((request, response) => {
      request.socket.once('close', () => closed());
      response.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'NO_STORAGE_VOL', message: 'no volume data', status: 404 }));
    });
    // the server never times the socket out: only the client can end it
    server.keepAliveTimeout = 0;
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const http = new GatewayHttp({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
    const size = 64 * 1024 * 1024;
    const body = Readable.from((function* () {
      for (let sent = 0; sent < size; sent += 64 * 1024) yield Buffer.alloc(64 * 1024);
    })());
    await expect(http.upload('/v1/nodes/n1/storage-pools/default/volumes/data/content', body, size)).rejects.toMatchObject({ code: 'NO_STORAGE_VOL' });
    await socketClosed;
    expect(body.destroyed).toBe(true);
  });
});

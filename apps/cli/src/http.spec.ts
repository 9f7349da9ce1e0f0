import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
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

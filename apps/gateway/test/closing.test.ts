import { once } from 'node:events';
import { connect } from 'node:net';
import { useNatsBus } from '@virtbus/testing';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';

const bus = useNatsBus();

describe('a gateway that is closing', () => {
  it('answers a request that still arrives with 503 SHUTTING_DOWN in the contract body and closes the connection', async () => {
    const app = await buildApp({ nc: bus.nc });
    // sent while close() runs: after the gateway's own preClose hooks, before the server stops listening
    let sent: Promise<Response> | undefined;
    app.addHook('preClose', async () => {
      sent = fetch(`http://127.0.0.1:${port()}/v1/nodes/a/domains`);
      await sent;
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    const port = () => (typeof address === 'object' && address ? address.port : 0);
    await app.close();
    const answer = await sent!;
    expect(answer.status).toBe(503);
    expect(await answer.json()).toMatchObject({ code: 'SHUTTING_DOWN', status: 503 });
    expect(answer.headers.get('connection')).toBe('close');
  });
});

describe('a request in flight when the gateway starts closing', () => {
  it('is answered with Connection: close, so its kept-alive socket does not hold close() open', async () => {
    const app = await buildApp({ nc: bus.nc });
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let arrived: () => void = () => undefined;
    const inFlight = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    app.get('/test-slow', async () => {
      arrived();
      await gate;
      return { ok: true };
    });
    // the slow request ends only once close() has begun
    app.addHook('preClose', async () => {
      release();
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const answer = fetch(`http://127.0.0.1:${port}/test-slow`);
    await inFlight;
    await app.close();
    const response = await answer;
    expect(response.status).toBe(200);
    expect(response.headers.get('connection')).toBe('close');
  });
});

describe('an upload that stalls when the gateway starts closing', () => {
  it('has its connection ended after the close grace, so close() does not wait out the request timeout', async () => {
    const app = await buildApp({ nc: bus.nc, limits: { closeGraceMs: 100 } });
    let arrived: () => void = () => undefined;
    const receiving = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    let completed = false;
    await app.register(async (scope) => {
      scope.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));
      scope.put('/test-upload', { config: { streamingBody: true } }, async (request) => {
        for await (const chunk of request.body as AsyncIterable<Buffer>) if (chunk.length > 0) arrived();
        completed = true;
        return { ok: true };
      });
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    const client = connect(typeof address === 'object' && address ? address.port : 0, '127.0.0.1');
    // the server ends the socket under the stalled upload; a reset is what the client may see
    client.on('error', () => undefined);
    const clientClosed = once(client, 'close');
    await once(client, 'connect');
    client.write('PUT /test-upload HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/octet-stream\r\ncontent-length: 1000\r\n\r\n' + 'x'.repeat(10));
    await receiving;
    await app.close();
    await clientClosed;
    expect(completed).toBe(false);
  });
});

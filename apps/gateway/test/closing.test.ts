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

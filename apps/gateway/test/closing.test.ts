import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServerHandle } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';

describe('a gateway that is closing', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
  });

  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('answers a request that still arrives with 503 SHUTTING_DOWN in the contract body and closes the connection', async () => {
    const app = await buildApp({ nc });
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

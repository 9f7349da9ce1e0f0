import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasBinaryOrSkip, type NatsServerHandle, startNatsServer, tearDown } from '@virtbus/testing';
import { buildApp, type GatewayApp } from '../src/index.js';

const canRun = hasBinaryOrSkip('nats-server');

describe.runIf(canRun)('gateway on a bus where no agent ever started', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let app: GatewayApp;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    app = await buildApp({ nc, discoveryWaitMs: 200 });
  });

  afterAll(() => tearDown(app, nc, nats));

  it('lists no nodes (no service answers, no node bucket yet) instead of failing', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/nodes' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ nodes: [], onlineWithinSeconds: 15 });
    const unknown = await app.inject({ method: 'GET', url: '/v1/nodes/nobody/domains' });
    expect(unknown.json()).toMatchObject({ code: 'NO_NODE', status: 404 });
  });
});

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

describe.runIf(canRun)('gateway on a bus whose JetStream does not answer', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let app: GatewayApp;

  beforeAll(async () => {
    nats = await startNatsServer({ jetstream: false });
    nc = await connect({ servers: nats.url });
    app = await buildApp({ nc, discoveryWaitMs: 200, sseResumeDeadlineMs: 500 });
  });

  afterAll(() => tearDown(app, nc, nats));

  // a cluster electing a JetStream leader (a server just died) answers no JetStream API for a while: a new SSE stream waits, bounded, then 503
  it('a new event stream answers 503 BUS_UNAVAILABLE after its bounded wait, not 500', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/events?since=0&kind=all' });
    expect(response.json()).toMatchObject({ code: 'BUS_UNAVAILABLE', status: 503 });
  });
});

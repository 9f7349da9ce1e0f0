import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasBinaryOrSkip, tearDown, useNatsBus } from '@virtbus/testing';
import { buildApp, type GatewayApp } from '../src/index.js';

const canRun = hasBinaryOrSkip('nats-server');

describe.runIf(canRun)('gateway on a bus where no agent ever started', () => {
  const bus = useNatsBus();
  let app: GatewayApp;

  beforeAll(async () => {
    app = await buildApp({ nc: bus.nc, discoveryWaitMs: 200 });
  });

  afterAll(() => tearDown(app));

  it('lists no nodes (no service answers, no node bucket yet) instead of failing', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/nodes' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ nodes: [], onlineWithinSeconds: 15 });
    const unknown = await app.inject({ method: 'GET', url: '/v1/nodes/nobody/domains' });
    expect(unknown.json()).toMatchObject({ code: 'NO_NODE', status: 404 });
  });
});

describe.runIf(canRun)('gateway on a bus whose JetStream does not answer', () => {
  const bus = useNatsBus({ jetstream: false });
  let app: GatewayApp;

  beforeAll(async () => {
    app = await buildApp({ nc: bus.nc, discoveryWaitMs: 200, sseResumeDeadlineMs: 500 });
  });

  afterAll(() => tearDown(app));

  // a cluster electing a JetStream leader (a server just died) answers no JetStream API for a while: a new SSE stream waits, bounded, then 503
  it('a new event stream answers 503 BUS_UNAVAILABLE after its bounded wait, not 500', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/events?since=0&kind=all' });
    expect(response.json()).toMatchObject({ code: 'BUS_UNAVAILABLE', status: 503 });
  });
});

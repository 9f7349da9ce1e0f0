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

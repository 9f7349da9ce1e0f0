import { Gauge, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMetricsServer, type MetricsServer } from './metrics-server.js';

describe('startMetricsServer', () => {
  const registry = new Registry();
  let healthy = true;
  let notReady: string | undefined;
  let server: MetricsServer;
  beforeAll(async () => {
    new Gauge({ name: 'virtbus_test_value', help: 'A value.', registers: [registry] }).set(42);
    server = await startMetricsServer({ registry, port: 0, healthy: () => healthy, ready: async () => notReady });
  });
  afterAll(async () => {
    await server.close();
  });

  it('binds loopback and serves /metrics in the registry content type', async () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
    const response = await fetch(`${server.url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe(registry.contentType);
    expect(await response.text()).toContain('virtbus_test_value 42');
  });

  it('answers /healthz from the callback, 404 elsewhere and 405 for other methods', async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    healthy = false;
    expect((await fetch(`${server.url}/healthz`)).status).toBe(503);
    healthy = true;
    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    expect((await fetch(`${server.url}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  it('answers /readyz from its own callback, with the reason when not ready', async () => {
    const readyz = async () => {
      const response = await fetch(`${server.url}/readyz`);
      return [response.status, await response.text()];
    };
    expect(await readyz()).toEqual([200, 'ready\n']);
    notReady = 'bus disconnected';
    expect(await readyz()).toEqual([503, 'not ready: bus disconnected\n']);
    // alive all the while
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    notReady = undefined;
  });

  it('answers 500 when collection throws, and keeps serving', async () => {
    new Gauge({
      name: 'virtbus_test_broken',
      help: 'Throws.',
      registers: [registry],
      collect() {
        throw new Error('boom');
      },
    });
    const response = await fetch(`${server.url}/metrics`);
    expect(response.status).toBe(500);
    expect(await response.text()).toContain('boom');
    registry.removeSingleMetric('virtbus_test_broken');
    expect((await fetch(`${server.url}/metrics`)).status).toBe(200);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type GatewayApp } from '@virtbus/gateway';
import { lintOpenApi } from '../openapi-lint.js';

describe('the served /openapi.json', () => {
  let app: GatewayApp;
  let base: string;

  beforeAll(async () => {
    app = await buildApp({
      nc: () => {
        throw new Error('the OpenAPI document needs no NATS');
      },
      logger: false,
    });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  });

  afterAll(async () => {
    await app?.close();
  });

  it("passes Redocly's recommended rules with 0 errors", async () => {
    const response = await fetch(`${base}/openapi.json`);
    expect(response.status).toBe(200);
    const report = await lintOpenApi(await response.json());
    const errors = report.problems.filter((problem) => problem.severity === 'error').map((problem) => `${problem.ruleId}: ${problem.message} ${problem.location?.[0]?.pointer ?? ''}`);
    expect(errors).toEqual([]);
    expect(report.totals.errors).toBe(0);
  });
});

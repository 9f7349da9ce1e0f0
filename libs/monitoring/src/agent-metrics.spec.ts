import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createAgentMetrics } from './agent-metrics.js';

describe('agent metrics', () => {
  it('reports the domains whose state write is pending, read at scrape time', async () => {
    const registry = new Registry();
    const metrics = createAgentMetrics({ registry, node: 'n1' });
    expect(await registry.metrics()).toMatch(/^virtbus_agent_domains_persist_pending\{node="n1"\} 0$/m);
    let pending = 2;
    metrics.watchPendingStateWrites(() => pending);
    expect(await registry.metrics()).toMatch(/^virtbus_agent_domains_persist_pending\{node="n1"\} 2$/m);
    pending = 0;
    expect(await registry.metrics()).toMatch(/^virtbus_agent_domains_persist_pending\{node="n1"\} 0$/m);
  });
});

import { readFile } from 'node:fs/promises';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createAgentMetrics, OK_CODE } from './agent-metrics.js';
import { createDomainMetrics } from './domain-metrics.js';
import { createGatewayMetrics } from './gateway-metrics.js';
import { createNodeMetrics } from './node-metrics.js';
import { growingCpuSource } from './spec-fixtures.js';

const DASHBOARD = new URL('../../../deploy/grafana/virtbus-dashboard.json', import.meta.url);
const PROMETHEUS_CONFIG = new URL('../../../deploy/prometheus/prometheus.yml', import.meta.url);
const METRIC_NAME = /\b(?:libvirt|virtbus)_[a-z0-9_]*[a-z0-9]\b/g;
const SELECTOR = /\b((?:libvirt|virtbus)_[a-z0-9_]*[a-z0-9])\{([^}]*)\}/g;

/** Every series name and its label names, as one registry holding all collectors exposes them after a scrape. */
async function exportedSeries(): Promise<Map<string, Set<string>>> {
  const registry = new Registry();
  createDomainMetrics({ registry, node: 'n1', source: growingCpuSource('11111111-1111-4111-8111-111111111111', 'web'), cacheIntervalMs: 0 });
  createNodeMetrics({ registry, node: 'n1' });
  const agent = createAgentMetrics({ registry, node: 'n1', nats: { connected: () => true, rttMs: async () => 0.2 } });
  agent.observeRequest('domain.start', OK_CODE, 0.01);
  agent.observeEventPublishLag('STARTED', 0.002);
  agent.countDriverError('qemu', 'domain.start', 'OPERATION_FAILED');
  agent.countEventPublishFailure('STARTED');
  const gateway = createGatewayMetrics({ registry });
  gateway.observeHttp('/v1/nodes/:node/domains', 'GET', 200, 0.003);
  gateway.observeBusCall('n1', 'domain.list', OK_CODE, 0.001);

  const series = new Map<string, Set<string>>();
  for (const metric of await registry.getMetricsAsJSON()) {
    for (const value of metric.values) {
      const name = (value as { metricName?: string }).metricName ?? metric.name;
      const labels = series.get(name) ?? new Set<string>();
      for (const label of Object.keys(value.labels)) labels.add(label);
      series.set(name, labels);
    }
    if (!series.has(metric.name) && String(metric.type) !== 'histogram') series.set(metric.name, new Set());
  }
  return series;
}

/** All PromQL text of the dashboard: panel targets and templating queries. */
function dashboardQueries(dashboard: { panels: { targets?: { expr: string }[] }[]; templating: { list: { definition?: string }[] } }): string[] {
  return [
    ...dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr)),
    ...dashboard.templating.list.flatMap((variable) => (variable.definition ? [variable.definition] : [])),
  ];
}

describe('deploy assets', () => {
  it('use only metric names and labels the collectors export', async () => {
    const series = await exportedSeries();
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8'));
    const config = (await readFile(PROMETHEUS_CONFIG, 'utf8'))
      .split('\n')
      .filter((line) => !line.trimStart().startsWith('#'))
      .join('\n');
    const queries = [...dashboardQueries(dashboard), config];

    const used = new Set(queries.flatMap((query) => query.match(METRIC_NAME) ?? []));
    expect(used.size).toBeGreaterThan(15);
    expect([...used].filter((name) => !series.has(name))).toEqual([]);

    const wrongLabels: string[] = [];
    for (const query of queries) {
      for (const [, name, matchers] of query.matchAll(SELECTOR)) {
        for (const [, label] of matchers!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) {
          if (!series.get(name!)?.has(label!)) wrongLabels.push(`${name}{${label}}`);
        }
      }
    }
    expect(wrongLabels).toEqual([]);
  });

  it('has a dashboard with the node and domain variables and the promised panels', async () => {
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8'));
    expect(dashboard.templating.list.map((variable: { name: string }) => variable.name)).toEqual(['datasource', 'node', 'domain']);
    const titles = dashboard.panels.map((panel: { title: string }) => panel.title);
    for (const title of ['Node CPU by mode', 'Node memory', 'NUMA free memory', 'Domain CPU', 'Domain memory', 'Domain disk throughput', 'Domain network throughput']) {
      expect(titles).toContain(title);
    }
    const ids = dashboard.panels.map((panel: { id: number }) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

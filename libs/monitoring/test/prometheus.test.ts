import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createAgentMetrics,
  createDomainMetrics,
  createGatewayMetrics,
  createNodeMetrics,
  createProcessMetrics,
  OK_CODE,
  Registry,
  startMetricsServer,
  type DomainStatsSource,
  type MetricsServer,
} from '../src/index.js';
import { fullStats, growingCpuSource, runningListing } from '../src/spec-fixtures.js';
import { hasBinaryOrSkip, type PrometheusHandle, startPrometheus, tearDown } from '@virtbus/testing';

const PROMTOOL = '/usr/bin/promtool';
const WEB = '11111111-1111-4111-8111-111111111111';
const STUCK = '22222222-2222-4222-8222-222222222222';
const DEADLINE_MS = 300;
const DASHBOARD = new URL('../../../deploy/grafana/virtbus-dashboard.json', import.meta.url);
const PROMETHEUS_CONFIG = new URL('../../../deploy/prometheus/prometheus.yml', import.meta.url);

const haveBinaries = hasBinaryOrSkip('prometheus') && hasBinaryOrSkip('promtool');

describe.skipIf(!haveBinaries)('a real Prometheus scraping the monitoring library', () => {
  let metrics: MetricsServer;
  let prometheus: PrometheusHandle | undefined;

  const query = (expr: string) => prometheus!.query(expr);
  const waitForQuery = (expr: string, accept: (values: number[]) => boolean, timeoutMs?: number) => prometheus!.waitFor(expr, accept, timeoutMs);

  beforeAll(async () => {
    const registry = new Registry();
    const growing = growingCpuSource(WEB, 'web');
    let stuckCalls = 0;
    // Like a SIGSTOPped QEMU: answers once, then its stats calls never return.
    const source: DomainStatsSource = {
      listDomains: async () => [...(await growing.listDomains()), runningListing(STUCK, 'stuck')],
      domainStats: (uuid, options) =>
        uuid === STUCK
          ? ++stuckCalls === 1
            ? Promise.resolve(fullStats(STUCK, 'stuck', 5_000_000_000))
            : new Promise(() => undefined)
          : growing.domainStats(uuid, options),
      listPools: () => growing.listPools!(),
    };
    createDomainMetrics({ registry, node: 'n1', source, cacheIntervalMs: 0, deadlineMs: DEADLINE_MS });
    createNodeMetrics({ registry, node: 'n1' });
    createProcessMetrics({ registry });
    const agent = createAgentMetrics({ registry, node: 'n1', nats: { connected: () => true, rttMs: async () => 0.3 } });
    agent.observeRequest('domain.list', OK_CODE, 0.002);
    agent.observeEventPublishLag('STARTED', 0.004);
    agent.countDriverError('qemu', 'domain.start', 'OPERATION_FAILED');
    const gateway = createGatewayMetrics({ registry });
    gateway.observeHttp('/v1/nodes/:node/domains', 'GET', 200, 0.004);
    gateway.observeBusCall('n1', 'domain.list', OK_CODE, 0.002);
    metrics = await startMetricsServer({ registry, port: 0 });

    // Scrape timeout 1 s: a collector that waited on the stuck domain would fail every scrape.
    prometheus = await startPrometheus({ targets: [`127.0.0.1:${metrics.port}`] });
  });

  afterAll(() => tearDown(prometheus, metrics));

  it('sees the domain CPU time increase', async () => {
    const selector = `libvirt_domain_info_cpu_time_seconds_total{job="virtbus-agent",uuid="${WEB}",domain="web",node="n1"}`;
    const [first] = await waitForQuery(selector, () => true);
    const [later] = await waitForQuery(selector, ([value]) => value! > first!);
    const [rate] = await waitForQuery(`rate(${selector}[5s])`, ([value]) => value! > 0);
    console.info(`prometheus: cpu_time_seconds_total ${first} -> ${later}; rate(...[5s]) = ${rate}`);
    expect(later).toBeGreaterThan(first!);
    expect(rate).toBeGreaterThan(0);
  });

  it('keeps scraping successfully while one domain is stuck, serving its last good value flagged as timed out', async () => {
    await waitForQuery(`libvirt_domain_timed_out{uuid="${STUCK}"}`, ([value]) => value === 1);
    const [cpu] = await waitForQuery(`libvirt_domain_info_cpu_time_seconds_total{uuid="${STUCK}"}`, () => true);
    expect(cpu).toBe(5);
    // Every scrape in the last 5 s succeeded within Prometheus' 1 s timeout.
    const [minUp] = await waitForQuery('min_over_time(up{job="virtbus-agent"}[5s])', () => true);
    expect(minUp).toBe(1);
    const [maxDuration] = await waitForQuery('max_over_time(scrape_duration_seconds{job="virtbus-agent"}[5s])', () => true);
    console.info(`prometheus: max scrape_duration_seconds over 5 s with a stuck domain (deadline ${DEADLINE_MS} ms) = ${maxDuration}`);
    expect(maxDuration).toBeLessThan(1);
  });

  it('accepts the exposition format and every dashboard query', async () => {
    const exposition = await (await fetch(`${metrics.url}/metrics`)).text();
    const lint = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.on('close', (code) => resolve({ code, output }));
      child.stdin.end(exposition);
    });
    expect(lint).toEqual({ code: 0, output: '' });
    // syntax only: the gateway job's token file exists on a Prometheus host, not here (apps/gateway/test/prometheus-config.test.ts runs the config)
    await promisify(execFile)(PROMTOOL, ['check', 'config', '--syntax-only', PROMETHEUS_CONFIG.pathname]);

    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as { panels: { targets?: { expr: string }[] }[] };
    const exprs = dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr));
    const failures: string[] = [];
    for (const expr of exprs) {
      const result = await query(expr.replaceAll('$__rate_interval', '5s').replaceAll('$node', '.*').replaceAll('$domain', '.*'));
      if (result.status !== 'success') failures.push(`${expr}: ${result.error}`);
    }
    expect(failures).toEqual([]);
    // The per-domain CPU panel shows data once Prometheus has two samples.
    const cpuPanel = exprs.find((expr) => expr.includes('libvirt_domain_info_cpu_time_seconds_total'))!;
    await waitForQuery(cpuPanel.replaceAll('$__rate_interval', '5s').replaceAll('$node', '.*').replaceAll('$domain', 'web'), ([value]) => value! > 0);
  });
});

import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { Subjects, type Domain, type DomainStatsList, type NodeStats, type StatsMessage } from '@virtbus/api-contract';
import { startAgent, type Agent } from '@virtbus/agent';
import { initTracing, SpanKind, type Tracing } from '@virtbus/monitoring';
import { hasBinaryOrSkip, type NatsServerHandle, startNatsServer, tearDown } from '@virtbus/testing';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildApp, type GatewayApp } from '../src/index.js';

const NODE = 'traced';
const QEMU = hasBinaryOrSkip('qemu-system-x86_64');
let nats: NatsServerHandle;
let nc: NatsConnection;
let agent: Agent;
let app: GatewayApp;
let tracing: Tracing;
let workDir: string;
const exporter = new InMemorySpanExporter();

const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

beforeAll(async () => {
  tracing = await initTracing({ serviceName: 'virtbus-test', exporter });
  nats = await startNatsServer();
  workDir = await mkdtemp(join(tmpdir(), 'virtbus-tracing-'));
  agent = await startAgent({
    node: NODE,
    nats: { servers: nats.url },
    stateDir: join(workDir, 'agent'),
    drivers: QEMU ? ['test', 'qemu'] : ['test'],
    logger: pino({ level: 'silent' }),
    monitoring: { metricsAddress: '127.0.0.1:0', statsIntervalS: 1, metricsCacheMs: 0 },
  });
  nc = await connect({ servers: nats.url });
  app = await buildApp({ nc });
});

afterAll(() => tearDown(app, nc, agent, tracing, nats, workDir));

describe('gateway and agent monitoring, one process each side of a real NATS', () => {
  let domain: Domain;

  it('one trace spans the gateway route, the NATS request, the agent handler and the driver', async () => {
    const defined = await app.inject({ method: 'POST', url: `/v1/nodes/${NODE}/domains`, payload: { name: 'traced-vm', driver: 'test' } });
    expect(defined.statusCode).toBe(201);
    domain = defined.json<Domain>();
    exporter.reset();

    const started = await app.inject({ method: 'PUT', url: `/v1/nodes/${NODE}/domains/${domain.uuid}/state`, payload: { action: 'start' } });
    expect(started.statusCode).toBe(200);
    await tracing.forceFlush();
    const spans = exporter.getFinishedSpans();
    const byName = (name: string) => {
      const span = spans.find((candidate) => candidate.name === name);
      expect(span, `span ${name} among ${spans.map((s) => s.name).join(', ')}`).toBeDefined();
      return span!;
    };
    const route = byName('PUT /v1/nodes/:node/domains/:id/state');
    const request = byName('nats request domain.state');
    const handler = byName('virtbus.agent domain.state');
    const driver = byName('driver.test start');

    const traceId = route.spanContext().traceId;
    for (const span of [request, handler, driver]) expect(span.spanContext().traceId).toBe(traceId);
    expect(parentOf(route)).toBeUndefined();
    expect(parentOf(request)).toBe(route.spanContext().spanId);
    expect(parentOf(handler)).toBe(request.spanContext().spanId);
    expect(parentOf(driver)).toBe(handler.spanContext().spanId);
    expect(route.attributes['http.response.status_code']).toBe(200);
    // The STARTED event's JetStream publish joins the trace of the call that caused it, once JetStream acknowledges.
    const publish = await vi.waitFor(() => {
      const found = exporter.getFinishedSpans().find((span) => span.name === 'publish VIRT_EVENTS' && String(span.attributes['messaging.destination.name']).endsWith('.STARTED'));
      expect(found).toBeDefined();
      return found!;
    });
    expect(publish.spanContext().traceId).toBe(traceId);
    expect(publish.kind).toBe(SpanKind.PRODUCER);
  });

  it('the gateway serves /metrics with the HTTP and bus-call histograms', async () => {
    const response = await app.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/text\/plain/);
    expect(response.body).toMatch(
      /virtbus_gateway_http_request_duration_seconds_count\{route="\/v1\/nodes\/:node\/domains\/:id\/state",method="PUT",status="200"\} 1/,
    );
    expect(response.body).toMatch(/virtbus_gateway_bus_call_duration_seconds_count\{node="traced",operation="domain.state",code="OK"\} 1/);
  });

  it('the agent serves /metrics on the address it was given, with its own health and the domain', async () => {
    expect(agent.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const body = await (await fetch(`${agent.metricsUrl}/metrics`)).text();
    expect(body).toMatch(/virtbus_agent_request_duration_seconds_count\{node="traced",operation="domain.state",code="OK"\} 1/);
    expect(body).toMatch(/virtbus_agent_nats_connected\{node="traced"\} 1/);
    expect(body).toContain(`libvirt_domain_info_state{domain="traced-vm",uuid="${domain.uuid}",node="traced",state_desc="the domain is running"} 1`);
    expect(body).toMatch(new RegExp(`libvirt_domain_timed_out\\{domain="traced-vm",uuid="${domain.uuid}",node="traced"\\} 0`));
    expect(body).toMatch(/virtbus_agent_event_publish_lag_seconds_count\{node="traced",type="STARTED"\} 1/);
  });

  it('GET /v1/nodes/:node/stats and /stats/domains answer with the contract schemas', async () => {
    const host = await app.inject({ method: 'GET', url: `/v1/nodes/${NODE}/stats` });
    expect(host.statusCode).toBe(200);
    const nodeStats = host.json<NodeStats>();
    expect(nodeStats.node).toBe(NODE);
    expect(nodeStats.cpu.user).toBeGreaterThan(0);
    expect(nodeStats.memory.totalBytes).toBeGreaterThan(nodeStats.memory.freeBytes);

    const bulk = await app.inject({ method: 'GET', url: `/v1/nodes/${NODE}/stats/domains` });
    expect(bulk.statusCode).toBe(200);
    const { domains } = bulk.json<DomainStatsList>();
    expect(domains.filter((stats) => stats.uuid === domain.uuid)).toHaveLength(1);
    expect(domains[0]).toMatchObject({ uuid: domain.uuid, state: 'running' });
    expect(domains[0]!.cpu?.timeNs).toBeGreaterThanOrEqual(0);
    expect(domains[0]!.timedOut).toBeUndefined();
  });

  it('the agent publishes stats periodically on virt.v1.<node>.stats, making no traces of its own', async () => {
    exporter.reset();
    // two 1 s ticks; each collects stats in this (busy) test process, so the bound leaves room for a loaded machine
    const sub = nc.subscribe(Subjects.stats(NODE), { max: 2, timeout: 30_000 });
    for await (const msg of sub) {
      const message = msg.json<StatsMessage>();
      expect(message.kind).toBe('node.stats');
      expect(message.host.node).toBe(NODE);
      expect(message.domains.map((stats) => stats.uuid)).toContain(domain.uuid);
    }
    await tracing.forceFlush();
    expect(exporter.getFinishedSpans().map((span) => span.name)).not.toContain('driver.test stats');
    await app.inject({ method: 'PUT', url: `/v1/nodes/${NODE}/domains/${domain.uuid}/state`, payload: { action: 'destroy' } });
  });

  it.skipIf(!QEMU)('a real QEMU start adds QMP command spans under the driver span of the same trace', async () => {
    const defined = await app.inject({ method: 'POST', url: `/v1/nodes/${NODE}/domains`, payload: { name: 'traced-qemu', driver: 'qemu', memory: 64 } });
    expect(defined.statusCode).toBe(201);
    const vm = defined.json<Domain>();
    try {
      exporter.reset();
      const started = await app.inject({ method: 'PUT', url: `/v1/nodes/${NODE}/domains/${vm.uuid}/state`, payload: { action: 'start' } });
      expect(started.statusCode).toBe(200);
      await tracing.forceFlush();
      const spans = exporter.getFinishedSpans();
      const route = spans.find((span) => span.name === 'PUT /v1/nodes/:node/domains/:id/state')!;
      const driver = spans.find((span) => span.name === 'driver.qemu start')!;
      expect(driver.spanContext().traceId).toBe(route.spanContext().traceId);
      const qmp = spans.filter((span) => span.name.startsWith('qmp ') && span.spanContext().traceId === route.spanContext().traceId);
      console.info(`QMP spans in the start trace: ${qmp.map((span) => span.name).join(', ')}`);
      expect(qmp.length).toBeGreaterThan(0);
      const byId = new Map(spans.map((span) => [span.spanContext().spanId, span]));
      // Every QMP span descends from the driver span.
      for (const span of qmp) {
        let parent = parentOf(span);
        while (parent && parent !== driver.spanContext().spanId) parent = byId.get(parent) ? parentOf(byId.get(parent)!) : undefined;
        expect(parent, span.name).toBe(driver.spanContext().spanId);
      }
    } finally {
      const destroyed = await app.inject({ method: 'PUT', url: `/v1/nodes/${NODE}/domains/${vm.uuid}/state`, payload: { action: 'destroy' } });
      expect(destroyed.json<Domain>().state).toBe('shutoff');
      expect((await app.inject({ method: 'DELETE', url: `/v1/nodes/${NODE}/domains/${vm.uuid}` })).statusCode).toBe(200);
    }
  });
});

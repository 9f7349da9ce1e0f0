import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-node';
import { afterEach, describe, expect, it } from 'vitest';
import { hostname } from 'node:os';
import { activeTraceIds, endSpan, extractTraceContext, initTracing, injectTraceHeaders, SpanKind, startSpan, TracingConfigError, withoutTracing, withSpan, type Tracing } from './tracing.js';

describe('tracing', () => {
  let tracing: Tracing | undefined;
  afterEach(async () => {
    await tracing?.shutdown();
    tracing = undefined;
  });

  it('registers nothing without OTEL_* configuration, and propagates nothing', async () => {
    tracing = await initTracing({ serviceName: 'virtbus-test', env: {} });
    expect(tracing.enabled).toBe(false);
    const headers: Record<string, string> = {};
    const result = await withSpan('noop', {}, (span) => {
      injectTraceHeaders((key, value) => (headers[key] = value));
      return span.isRecording();
    });
    expect(result).toBe(false);
    expect(headers).toEqual({});
    expect((await initTracing({ serviceName: 'x', env: { OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1' } })).enabled).toBe(false);
    expect((await initTracing({ serviceName: 'x', env: { OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' } })).enabled).toBe(false);
    await expect(initTracing({ serviceName: 'x', env: { OTEL_TRACES_EXPORTER: 'zipkin' } })).rejects.toThrow(TracingConfigError);
    await expect(initTracing({ serviceName: 'x', env: { OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' } })).rejects.toThrow(TracingConfigError);
  });

  it('continues one trace from gateway to agent through traceparent headers', async () => {
    const exporter = new InMemorySpanExporter();
    tracing = await initTracing({ serviceName: 'virtbus-test', exporter });
    expect(tracing.enabled).toBe(true);

    // "gateway": route span, then a NATS request carrying the headers in a plain object.
    const natsHeaders: Record<string, string> = {};
    const gatewayTraceId = await withSpan('GET /v1/nodes/:node/domains', { 'http.request.method': 'GET' }, async (route) => {
      await withSpan('virt.v1.n1.ro.domain.list', { 'messaging.system': 'nats' }, () => injectTraceHeaders((key, value) => (natsHeaders[key] = value)), {
        kind: SpanKind.CLIENT,
      });
      return route.spanContext().traceId;
    }, { kind: SpanKind.SERVER });
    expect(natsHeaders.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);

    // "agent": handler span in the extracted context, a driver span and a QMP span below it.
    const parent = extractTraceContext((key) => natsHeaders[key]);
    await withSpan('agent domain.list', { 'virt.node': 'n1' }, async () => {
      expect(activeTraceIds()?.traceId).toBe(gatewayTraceId);
      await withSpan('driver qemu.list', {}, () => withSpan('qmp query-status', {}, () => 'running'));
    }, { parent, kind: SpanKind.SERVER });

    const spans = exporter.getFinishedSpans();
    expect(spans.map((span) => span.name).sort()).toEqual(
      ['GET /v1/nodes/:node/domains', 'agent domain.list', 'driver qemu.list', 'qmp query-status', 'virt.v1.n1.ro.domain.list'].sort(),
    );
    expect(new Set(spans.map((span) => span.spanContext().traceId))).toEqual(new Set([gatewayTraceId]));
    const byName = new Map(spans.map((span) => [span.name, span]));
    const client = byName.get('virt.v1.n1.ro.domain.list')!;
    expect(byName.get('agent domain.list')!.parentSpanContext?.spanId).toBe(client.spanContext().spanId);
    expect(byName.get('qmp query-status')!.parentSpanContext?.spanId).toBe(byName.get('driver qemu.list')!.spanContext().spanId);
    expect(client.resource.attributes['service.name']).toBe('virtbus-test');
  });

  it('records a thrown error, its code and an error status, and rethrows it', async () => {
    const exporter = new InMemorySpanExporter();
    tracing = await initTracing({ serviceName: 'virtbus-test', exporter });
    const failure = Object.assign(new Error('no domain with uuid x'), { code: 'NO_DOMAIN' });
    await expect(withSpan('agent domain.get', {}, () => Promise.reject(failure))).rejects.toBe(failure);
    const [span] = exporter.getFinishedSpans();
    expect(span?.status).toEqual({ code: 2, message: 'no domain with uuid x' });
    expect(span?.attributes['error.type']).toBe('NO_DOMAIN');
    expect(span?.events[0]?.name).toBe('exception');
  });

  /** Exports one span through initTracing with the given OTEL_* environment to a local receiver; what it received. */
  async function exportOnce(env: Record<string, string>): Promise<{ contentType: string | undefined; body: Buffer }[]> {
    const received: { contentType: string | undefined; body: Buffer }[] = [];
    const receiver = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        if (request.url === '/v1/traces') received.push({ contentType: request.headers['content-type'], body: Buffer.concat(chunks) });
        response.writeHead(200, { 'content-type': request.headers['content-type'] ?? 'application/json' }).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    const saved = { ...process.env };
    Object.assign(process.env, { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_SERVICE_NAME: 'virtbus-from-env', ...env });
    try {
      tracing = await initTracing({ serviceName: 'virtbus-agent' });
      expect(tracing.enabled).toBe(true);
      await withSpan('agent domain.start', { 'virt.domain.uuid': 'u' }, () => undefined);
      await tracing.forceFlush();
    } finally {
      process.env = saved;
      await new Promise((resolve) => receiver.close(resolve));
    }
    return received;
  }

  it('exports OTLP/HTTP JSON when OTEL_EXPORTER_OTLP_PROTOCOL=http/json', async () => {
    const [request] = await exportOnce({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' });
    expect(request?.contentType).toBe('application/json');
    const text = JSON.stringify(JSON.parse(request!.body.toString()));
    expect(text).toContain('agent domain.start');
    expect(text).toContain('virtbus-from-env');
  });

  it('exports OTLP/HTTP protobuf by default, as the OTLP spec says', async () => {
    const [request] = await exportOnce({});
    expect(request?.contentType).toBe('application/x-protobuf');
    expect(() => JSON.parse(request!.body.toString())).toThrow();
    // protobuf keeps strings as they are
    expect(request!.body.toString('latin1')).toContain('agent domain.start');
  });

  it('puts host.name, the given attributes and the version in the resource', async () => {
    const exporter = new InMemorySpanExporter();
    tracing = await initTracing({ serviceName: 'virtbus-agent', serviceVersion: '9.9.9', resourceAttributes: { 'virtbus.node': 'n7' }, exporter, env: {} });
    await withSpan('s', {}, () => undefined);
    const [span] = exporter.getFinishedSpans();
    expect(span?.resource.attributes).toMatchObject({ 'service.name': 'virtbus-agent', 'service.version': '9.9.9', 'host.name': hostname(), 'virtbus.node': 'n7' });
  });

  it('makes no spans inside withoutTracing, and ends a startSpan span with its error', async () => {
    const exporter = new InMemorySpanExporter();
    tracing = await initTracing({ serviceName: 'virtbus-test', exporter });
    await withoutTracing(() => withSpan('background stats', {}, () => withSpan('qmp query-blockstats', {}, () => undefined)));
    expect(exporter.getFinishedSpans()).toEqual([]);
    await withSpan('caller', {}, () => {
      endSpan(startSpan('publish VIRT_EVENTS', {}, { kind: SpanKind.PRODUCER }), Object.assign(new Error('no ack'), { code: 'TIMEOUT' }));
    });
    const [publish, caller] = exporter.getFinishedSpans();
    expect(publish?.name).toBe('publish VIRT_EVENTS');
    expect(publish?.parentSpanContext?.spanId).toBe(caller?.spanContext().spanId);
    expect(publish?.attributes['error.type']).toBe('TIMEOUT');
  });

  it('leaves the global tracer a no-op again after shutdown', async () => {
    tracing = await initTracing({ serviceName: 'virtbus-test', exporter: new InMemorySpanExporter() });
    await tracing.shutdown();
    tracing = undefined;
    expect(trace.getTracer('t').startSpan('s').isRecording()).toBe(false);
  });
});

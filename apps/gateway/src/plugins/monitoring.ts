import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import type { MsgHdrs } from '@nats-io/transport-node';
import {
  createGatewayMetrics,
  createProcessMetrics,
  extractTraceContext,
  injectTraceHeaders,
  Registry,
  SpanKind,
  tracingActive,
  withSpan,
  type GatewayMetrics,
  type Span,
} from '@virtbus/monitoring';
import type { TraceInjector } from '../trace.js';
import { shared } from './skip-override.js';

/** Writes the active span's W3C trace context into the NATS request headers. */
export const injectActiveTrace: TraceInjector = (headers: MsgHdrs) => injectTraceHeaders((key, value) => headers.set(key, value));

export interface GatewayMonitoringOptions {
  registry: Registry;
  metrics: GatewayMetrics;
}

export function createGatewayMonitoring(): GatewayMonitoringOptions {
  const registry = new Registry();
  createProcessMetrics({ registry });
  return { registry, metrics: createGatewayMetrics({ registry }) };
}

interface RouteSpan {
  span: Span;
  finish: () => void;
}

const routeSpans = new WeakMap<FastifyRequest, RouteSpan>();

/** /metrics, the HTTP histogram, and one server span per routed request in which the handler (and its NATS calls) run. */
async function monitoringPlugin(app: FastifyInstance, options: GatewayMonitoringOptions): Promise<void> {
  const { registry, metrics } = options;

  app.addHook('preHandler', (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) => {
    if (!tracingActive()) return done();
    const route = request.routeOptions.url ?? 'unmatched';
    const parent = extractTraceContext((key) => {
      const value = request.headers[key];
      return Array.isArray(value) ? value[0] : value;
    });
    // The span stays open until onResponse; the handler runs inside it so agent calls carry its context.
    void withSpan(
      `${request.method} ${route}`,
      { 'http.request.method': request.method, 'http.route': route },
      (span) =>
        new Promise<void>((finish) => {
          routeSpans.set(request, { span, finish });
          done();
        }),
      { parent, kind: SpanKind.SERVER },
    );
  });

  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    metrics.observeHttp(request.routeOptions.url ?? 'unmatched', request.method, reply.statusCode, reply.elapsedTime / 1000);
    const traced = routeSpans.get(request);
    if (traced) {
      traced.span.setAttribute('http.response.status_code', reply.statusCode);
      routeSpans.delete(request);
      traced.finish();
    }
    done();
  });

  // A client that goes away before the answer still ends its span.
  app.addHook('onRequestAbort', (request: FastifyRequest, done: HookHandlerDoneFunction) => {
    const traced = routeSpans.get(request);
    if (traced) {
      traced.span.setAttribute('http.request.aborted', true);
      routeSpans.delete(request);
      traced.finish();
    }
    done();
  });

  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    const body = await registry.metrics();
    return reply.header('content-type', registry.contentType).header('cache-control', 'no-store').send(body);
  });
}

export default shared(monitoringPlugin);

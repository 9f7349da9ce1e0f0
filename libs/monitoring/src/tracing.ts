import {
  context,
  INVALID_SPAN_CONTEXT,
  propagation,
  ProxyTracerProvider,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
} from '@opentelemetry/api';
// the two files, not the package index: that loads all of core and the semantic conventions (~5 MiB of an idle daemon's RSS)
import { suppressTracing } from '@opentelemetry/core/build/src/trace/suppress-tracing.js';
import { W3CTraceContextPropagator } from '@opentelemetry/core/build/src/trace/W3CTraceContextPropagator.js';
import type { SpanExporter } from '@opentelemetry/sdk-trace-node';

export { SpanKind, type Attributes, type Context, type Span };

export interface TracingOptions {
  serviceName: string;
  serviceVersion?: string;
  /** Extra resource attributes, e.g. `{ 'virtbus.node': node }`; `host.name` is always set. */
  resourceAttributes?: Attributes;
  /** Explicit exporter (tests: InMemorySpanExporter); spans go to it synchronously, whatever the environment says. */
  exporter?: SpanExporter;
  /** Defaults to process.env; the standard OTEL_* variables decide whether and where to export. */
  env?: NodeJS.ProcessEnv;
}

export interface Tracing {
  /** False when nothing was registered: the API's no-op tracer is in use and spans cost next to nothing. */
  readonly enabled: boolean;
  forceFlush(): Promise<void>;
  /** Flushes, then unregisters the global provider so a later initTracing can register again. */
  shutdown(): Promise<void>;
}

export class TracingConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TracingConfigError';
  }
}

/** One fixed W3C propagator: trace context crosses NATS the same way whether or not the SDK is registered. */
const W3C = new W3CTraceContextPropagator();

const DISABLED: Tracing = { enabled: false, forceFlush: async () => undefined, shutdown: async () => undefined };

/** The exporters OTEL_TRACES_EXPORTER and OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL can name. */
export type ExporterKind = 'otlp-protobuf' | 'otlp-json' | 'console';

/** The exporter the OTEL_* environment asks for, or undefined when tracing is off. */
function exporterFromEnv(env: NodeJS.ProcessEnv): ExporterKind | undefined {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return undefined;
  const names = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter(Boolean);
  const endpointSet = Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  if (names.length === 0) return endpointSet ? otlpExporter(env) : undefined;
  if (names.includes('none')) return undefined;
  const [name, ...rest] = names;
  if (rest.length > 0) throw new TracingConfigError(`OTEL_TRACES_EXPORTER: one exporter is supported, got ${names.join(',')}`);
  if (name === 'otlp') return otlpExporter(env);
  if (name === 'console') return 'console';
  throw new TracingConfigError(`OTEL_TRACES_EXPORTER=${name} is not supported (otlp, console or none)`);
}

/** OTLP over HTTP in the protocol OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL names; protobuf is the spec's default. */
function otlpExporter(env: NodeJS.ProcessEnv): ExporterKind {
  const protocol = (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf').trim().toLowerCase();
  if (protocol === 'http/protobuf') return 'otlp-protobuf';
  if (protocol === 'http/json') return 'otlp-json';
  throw new TracingConfigError(`OTLP protocol ${protocol} is not supported (use http/protobuf or http/json)`);
}

/**
 * Registers a global tracer provider when the standard OTEL_* environment asks for one (OTLP over HTTP, batched)
 * or when an exporter is passed; otherwise registers nothing. The SDK is imported only then: loading it costs an
 * untraced daemon ~9 MiB of RSS (tools/bench idle memory).
 */
export async function initTracing(options: TracingOptions): Promise<Tracing> {
  const exporter = options.exporter ? undefined : exporterFromEnv(options.env ?? process.env);
  if (!options.exporter && !exporter) return DISABLED;
  const { registerProvider } = await import('./tracing-sdk.js');
  const provider = registerProvider({ ...options, propagator: W3C, exporterKind: exporter });
  return {
    enabled: true,
    forceFlush: () => provider.forceFlush(),
    async shutdown() {
      try {
        await provider.shutdown();
      } finally {
        trace.disable();
        context.disable();
        propagation.disable();
      }
    },
  };
}

/** The API's no-op provider, which the global proxy delegates to until an SDK registers. */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();
const NOOP_SPAN = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** Whether any SDK tracer provider is registered (by initTracing or by anyone else). */
export function tracingActive(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegate() !== NOOP_PROVIDER;
}

/** Writes `traceparent` (and `tracestate`) for the active span, e.g. into NATS message headers; nothing when untraced. */
export function injectTraceHeaders(setHeader: (key: string, value: string) => void, from: Context = context.active()): void {
  if (!trace.getSpan(from)) return;
  W3C.inject(from, undefined, { set: (_carrier, key, value) => setHeader(key, value) });
}

/** The context a remote caller's `traceparent` describes; start handler spans in it to continue the trace. */
export function extractTraceContext(getHeader: (key: string) => string | undefined, base: Context = context.active()): Context {
  return W3C.extract(base, undefined, {
    get: (_carrier, key) => getHeader(key) || undefined,
    keys: () => ['traceparent', 'tracestate'],
  });
}

export interface SpanOptions {
  kind?: SpanKind;
  /** Parent context, e.g. from extractTraceContext; the active context otherwise. */
  parent?: Context;
  tracerName?: string;
}

/**
 * Runs fn in a new active span; a thrown error is recorded on the span (with its `code`, when it has one,
 * as error.type) and rethrown. The span ends when fn settles.
 */
export async function withSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => T | Promise<T>, options: SpanOptions = {}): Promise<T> {
  // Untraced processes skip span and context bookkeeping entirely.
  if (!tracingActive()) return fn(NOOP_SPAN);
  const tracer = trace.getTracer(options.tracerName ?? 'virtbus');
  const parent = options.parent ?? context.active();
  return tracer.startActiveSpan(name, { attributes, kind: options.kind ?? SpanKind.INTERNAL }, parent, async (span) => {
    try {
      return await fn(span);
    } catch (error) {
      recordError(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

/** The active context, to parent later work (an event's publish) on the call that caused it. */
export function activeContext(): Context {
  return context.active();
}

/** A span that is not made active, ended by the caller with endSpan (e.g. around a publish until its ack). */
export function startSpan(name: string, attributes: Attributes, options: SpanOptions = {}): Span {
  if (!tracingActive()) return NOOP_SPAN;
  return trace.getTracer(options.tracerName ?? 'virtbus').startSpan(name, { attributes, kind: options.kind ?? SpanKind.INTERNAL }, options.parent ?? context.active());
}

/** Ends a span from startSpan, recording the error (and its code) when there is one. */
export function endSpan(span: Span, error?: unknown): void {
  if (error !== undefined) recordError(span, error);
  span.end();
}

function recordError(span: Span, error: unknown): void {
  const exception = error instanceof Error ? error : new Error(String(error));
  span.recordException(exception);
  const code = (error as { code?: unknown }).code;
  span.setAttribute('error.type', typeof code === 'string' ? code : exception.name);
  span.setStatus({ code: SpanStatusCode.ERROR, message: exception.message });
}

/** Runs fn with tracing suppressed: background loops (periodic stats, scrapes) make no parentless traces. */
export function withoutTracing<T>(fn: () => T): T {
  return context.with(suppressTracing(context.active()), fn);
}

/** Ids of the active span for log correlation; undefined when untraced. */
export function activeTraceIds(): { traceId: string; spanId: string } | undefined {
  const span = trace.getActiveSpan();
  if (!span) return undefined;
  const spanContext = span.spanContext();
  return trace.isSpanContextValid(spanContext) ? { traceId: spanContext.traceId, spanId: spanContext.spanId } : undefined;
}

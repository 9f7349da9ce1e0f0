import { hostname } from 'node:os';
import type { TextMapPropagator } from '@opentelemetry/api';
import { OTLPTraceExporter as OtlpJsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpProtobufTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, ConsoleSpanExporter, NodeTracerProvider, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { ExporterKind, TracingOptions } from './tracing.js';

const Exporters: Record<ExporterKind, () => SpanExporter> = {
  'otlp-protobuf': () => new OtlpProtobufTraceExporter(),
  'otlp-json': () => new OtlpJsonTraceExporter(),
  console: () => new ConsoleSpanExporter(),
};

/** The SDK half of initTracing, imported only when tracing is on: a global provider with the service's resource. */
export function registerProvider(options: TracingOptions & { propagator: TextMapPropagator; exporterKind?: ExporterKind }): NodeTracerProvider {
  // a passed exporter (tests) gets every span synchronously; an environment's exporter is batched
  const processor = options.exporter ? new SimpleSpanProcessor(options.exporter) : new BatchSpanProcessor(Exporters[options.exporterKind!]());
  const resource = defaultResource()
    .merge(
      resourceFromAttributes({
        [ATTR_SERVICE_NAME]: options.serviceName,
        'host.name': hostname(),
        ...options.resourceAttributes,
        ...(options.serviceVersion ? { [ATTR_SERVICE_VERSION]: options.serviceVersion } : {}),
      }),
    )
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override what the code says, as the spec wants.
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new NodeTracerProvider({ resource, spanProcessors: [processor] });
  provider.register({ propagator: options.propagator });
  return provider;
}

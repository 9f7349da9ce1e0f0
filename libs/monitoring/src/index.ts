export {
  createDomainMetrics,
  StoragePoolStates,
  type DomainJobListing,
  type DomainListing,
  type DomainMetrics,
  type DomainMetricsOptions,
  type DomainOsListing,
  type DomainStatsSource,
  type StoragePoolListing,
  type StoragePoolState,
} from './domain-metrics.js';
export {
  createNodeMetrics,
  parseMeminfo,
  parseNumaMeminfo,
  parseProcStat,
  readNumaCells,
  CPU_MODES,
  type CpuMode,
  type NodeMemory,
  type NodeMetricsOptions,
  type NumaCellMemory,
} from './node-metrics.js';
export { createAgentMetrics, OK_CODE, REQUEST_DURATION_BUCKETS, type AgentMetrics, type AgentMetricsOptions, type NatsStatusProbe } from './agent-metrics.js';
export { createGatewayMetrics, type GatewayMetrics, type GatewayMetricsOptions } from './gateway-metrics.js';
export { startMetricsServer, type MetricsServer, type MetricsServerOptions } from './metrics-server.js';
export {
  activeContext,
  activeTraceIds,
  endSpan,
  extractTraceContext,
  initTracing,
  injectTraceHeaders,
  startSpan,
  SpanKind,
  TracingConfigError,
  tracingActive,
  withoutTracing,
  withSpan,
  type Attributes,
  type Context,
  type Span,
  type SpanOptions,
  type Tracing,
  type TracingOptions,
} from './tracing.js';
export { createProcessMetrics } from './process-metrics.js';
export { Registry } from 'prom-client';

import type { Registry } from 'prom-client';
import { metricsIn } from './metric-factory.js';

export interface GatewayMetricsOptions {
  registry: Registry;
}

export interface GatewayMetrics {
  /** `route` is the route pattern (`/v1/nodes/:node/domains/:uuid`), never the raw URL, to bound cardinality. */
  observeHttp(route: string, method: string, status: number, seconds: number): void;
  /** Starts timing one NATS request to an agent; call the result with the reply's code. */
  startBusCall(node: string, operation: string): (code: string) => void;
  observeBusCall(node: string, operation: string, code: string, seconds: number): void;
  /** A promise rejection nothing handled (logged by the process handler instead of ending the gateway). */
  countUnhandledRejection(): void;
}

export function createGatewayMetrics(options: GatewayMetricsOptions): GatewayMetrics {
  const { registry } = options;
  const { histogram, counter } = metricsIn(registry);
  const http = histogram(
    'virtbus_gateway_http_request_duration_seconds',
    'Time the gateway took to answer one HTTP request, by route pattern, method and status.',
    ['route', 'method', 'status'],
  );
  const bus = histogram(
    'virtbus_gateway_bus_call_duration_seconds',
    'Time one NATS request from the gateway to an agent took, by target node, operation and reply code.',
    ['node', 'operation', 'code'],
  );
  const unhandled = counter('virtbus_gateway_unhandled_rejections_total', 'Promise rejections nothing handled; each is a bug, logged and survived.');
  return {
    countUnhandledRejection() {
      unhandled.inc();
    },
    observeHttp(route, method, status, seconds) {
      http.observe({ route, method, status: String(status) }, seconds);
    },
    startBusCall(node, operation) {
      const end = bus.startTimer({ node, operation });
      return (code) => end({ code });
    },
    observeBusCall(node, operation, code, seconds) {
      bus.observe({ node, operation, code }, seconds);
    },
  };
}

import type { Registry } from 'prom-client';
import { metricsIn } from './metric-factory.js';

export { REQUEST_DURATION_BUCKETS } from './metric-factory.js';
const LAG_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Code label of a successful request; failures use the contract's error code (NO_DOMAIN, …). */
export const OK_CODE = 'OK';

export interface NatsStatusProbe {
  /** Whether the NATS connection is up right now. */
  connected(): boolean;
  /** One round trip to the server in milliseconds (nats.js `nc.rtt()`); bounded by rttTimeoutMs on scrape. */
  rttMs?(): Promise<number>;
}

export interface AgentMetricsOptions {
  registry: Registry;
  node: string;
  nats?: NatsStatusProbe;
  rttTimeoutMs?: number;
}

export interface AgentMetrics {
  /** Starts timing one bus request; call the result with the reply's code (OK_CODE or an error code). */
  startRequest(operation: string): (code: string) => void;
  observeRequest(operation: string, code: string, seconds: number): void;
  /** Time from the state change being observed to JetStream acknowledging its event. */
  observeEventPublishLag(type: string, seconds: number): void;
  countDriverError(driver: string, operation: string, code: string): void;
  countEventPublishFailure(type: string): void;
  /** A promise rejection nothing handled (logged by the process handler instead of ending the agent). */
  countUnhandledRejection(): void;
  /** Where the count of domains with a state write still pending (full state dir) is read at scrape time. */
  watchPendingStateWrites(count: () => number): void;
}

export function createAgentMetrics(options: AgentMetricsOptions): AgentMetrics {
  const { registry, node, nats } = options;
  const rttTimeoutMs = options.rttTimeoutMs ?? 1_000;

  const { histogram, counter, gauge } = metricsIn(registry);
  const requests = histogram(
    'virtbus_agent_request_duration_seconds',
    'Time the agent took to answer one bus request, by operation and reply code.',
    ['node', 'operation', 'code'],
  );
  const publishLag = histogram(
    'virtbus_agent_event_publish_lag_seconds',
    'Time from observing a domain state change to JetStream acknowledging its event.',
    ['node', 'type'],
    LAG_BUCKETS,
  );
  const publishFailures = counter('virtbus_agent_event_publish_failures_total', 'Lifecycle events whose publication failed (they are retried).', ['node', 'type']);
  const driverErrors = counter(
    'virtbus_agent_driver_errors_total',
    'Errors returned by hypervisor drivers, by driver, operation and error code.',
    ['node', 'driver', 'operation', 'code'],
  );
  const unhandled = counter('virtbus_agent_unhandled_rejections_total', 'Promise rejections nothing handled; each is a bug, logged and survived.', ['node']);
  unhandled.inc({ node }, 0);
  let pendingStateWrites: (() => number) | undefined;
  gauge(
    'virtbus_agent_domains_persist_pending',
    'Domains whose last change happened but is not yet on disk (state dir full or failing); the agent retries the write.',
    ['node'],
    function () {
      this.set({ node }, pendingStateWrites?.() ?? 0);
    },
  );
  gauge('virtbus_agent_nats_connected', 'Whether the agent is connected to NATS (1) or not (0).', ['node'], function () {
    this.set({ node }, nats?.connected() ? 1 : 0);
  });
  gauge(
    'virtbus_agent_nats_rtt_seconds',
    'Round trip time to the NATS server measured at scrape time; absent when it cannot be measured in time.',
    ['node'],
    async function () {
      this.reset();
      if (!nats?.rttMs || !nats.connected()) return;
      const rtt = await boundedRtt(nats.rttMs.bind(nats), rttTimeoutMs);
      if (rtt !== undefined) this.set({ node }, rtt / 1000);
    },
  );

  return {
    startRequest(operation) {
      const end = requests.startTimer({ node, operation });
      return (code) => end({ code });
    },
    observeRequest(operation, code, seconds) {
      requests.observe({ node, operation, code }, seconds);
    },
    observeEventPublishLag(type, seconds) {
      publishLag.observe({ node, type }, seconds);
    },
    countDriverError(driver, operation, code) {
      driverErrors.inc({ node, driver, operation, code });
    },
    countEventPublishFailure(type) {
      publishFailures.inc({ node, type });
    },
    countUnhandledRejection() {
      unhandled.inc({ node });
    },
    watchPendingStateWrites(count) {
      pendingStateWrites = count;
    },
  };
}

async function boundedRtt(measure: () => Promise<number>, timeoutMs: number): Promise<number | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)));
  try {
    return await Promise.race([measure().catch(() => undefined), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

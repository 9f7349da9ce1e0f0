import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { EVENTS_STREAM, Subjects, VirtError, type AsyncOperation } from '@virtbus/api-contract';
import {
  createAgentMetrics,
  createDomainMetrics,
  createNodeMetrics,
  createProcessMetrics,
  extractTraceContext,
  Registry,
  SpanKind,
  startMetricsServer,
  tracingActive,
  withoutTracing,
  withSpan,
  type AgentMetrics,
  type DomainJobListing,
  type DomainListing,
  type MetricsServer,
  type StoragePoolListing,
} from '@virtbus/monitoring';
import type { Logger } from 'pino';
import type { DomainManager } from './domains/manager.js';
import type { EventPublisher } from './events/publisher.js';
import { readNodeStats } from './node-stats.js';
import { DEFAULT_MAX_PAYLOAD, type CallContext } from './service.js';
import { statsMessages } from './stats-messages.js';

export const DEFAULT_METRICS_ADDRESS = '127.0.0.1:9177';
export const DEFAULT_STATS_INTERVAL_S = 10;
export const DEFAULT_METRICS_CACHE_MS = 5_000;
export const DEFAULT_STATS_DEADLINE_MS = 2_000;
const DRIVER_DEADLINE_MARGIN_MS = 500;

export interface AgentMonitoringConfig {
  /** `host:port` of /metrics (port 0 picks a free one), or `off`. */
  metricsAddress?: string;
  /** Seconds between stats messages on `virt.v1.<node>.stats`; 0 turns them off. */
  statsIntervalS?: number;
  /** Scrapes within this many ms of the last collection are served from the cache. */
  metricsCacheMs?: number;
  /** Bound for one domain's stats in a scrape or a bulk stats call. */
  statsDeadlineMs?: number;
}

/** `host:port` or `[v6]:port`; undefined for `off`. */
export function parseMetricsAddress(text: string): { host: string; port: number } | undefined {
  if (text.trim().toLowerCase() === 'off') return undefined;
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim());
  const port = Number(match?.[3]);
  if (!match || port > 65_535) throw new VirtError('INVALID_ARG', `metrics address must be host:port or off, got ${JSON.stringify(text)}`);
  return { host: (match[1] ?? match[2])!, port };
}

const codeOf = (error: unknown) => (VirtError.is(error) ? error.code : 'INTERNAL');

export interface AgentMonitoring {
  readonly metrics: AgentMetrics;
  /** serveOperations' hooks: a server span per request continuing the caller's trace, and the request histogram. */
  around<T>(context: CallContext, run: () => Promise<T>): Promise<T>;
  onResult(operation: string, code: string, durationMs: number): void;
  onDriverError(driver: string, operation: string, error: unknown): void;
  /** Starts /metrics and the periodic stats messages once the manager is ready; returns the metrics URL. */
  start(manager: DomainManager, events: EventPublisher, pools?: { list(): Promise<StoragePoolListing[]>; operations?: { list(): AsyncOperation[] } }): Promise<string | undefined>;
  close(): Promise<void>;
}

/** Each domain's running operations (migration, block jobs) as its one libvirt job: bytes summed, the earliest start. */
export function withJobs(listings: DomainListing[], operations: readonly AsyncOperation[]): DomainListing[] {
  const jobs = new Map<string, DomainJobListing>();
  for (const operation of operations) {
    const uuid = operation.resources.domain;
    if (operation.status !== 'running' || !uuid) continue;
    const before = jobs.get(uuid);
    const ram = operation.migration;
    jobs.set(uuid, {
      startedAt: Math.min(before?.startedAt ?? Infinity, Date.parse(operation.createdAt)),
      dataTotalBytes: (before?.dataTotalBytes ?? 0) + operation.progress.bytesTotal,
      dataProcessedBytes: (before?.dataProcessedBytes ?? 0) + operation.progress.bytesProcessed,
      ...(ram ? { memoryTotalBytes: ram.ramTotalBytes, memoryProcessedBytes: ram.ramTransferredBytes, memoryRemainingBytes: ram.ramRemainingBytes } : {}),
    });
  }
  return jobs.size === 0 ? listings : listings.map((listing) => (jobs.has(listing.uuid) ? { ...listing, job: jobs.get(listing.uuid)! } : listing));
}

/** How long /readyz waits for the event stream's info: a disconnected bus answers nothing. */
const READY_TIMEOUT_MS = 2_000;

/** /readyz of the agent: the bus connected and the event stream reachable (undefined), or why not. */
async function busReady(nc: NatsConnection): Promise<string | undefined> {
  if (nc.isClosed()) return 'bus connection closed';
  try {
    const jsm = await jetstreamManager(nc, { timeout: READY_TIMEOUT_MS, checkAPI: false });
    await jsm.streams.info(EVENTS_STREAM);
    return undefined;
  } catch (error) {
    return `event stream ${EVENTS_STREAM} unreachable: ${(error as Error).message}`;
  }
}

export function createAgentMonitoring(options: { node: string; nc: NatsConnection; logger: Logger; config?: AgentMonitoringConfig }): AgentMonitoring {
  const { node, nc, logger } = options;
  const config = options.config ?? {};
  const address = parseMetricsAddress(config.metricsAddress ?? DEFAULT_METRICS_ADDRESS);
  const statsIntervalS = config.statsIntervalS ?? DEFAULT_STATS_INTERVAL_S;
  const deadlineMs = config.statsDeadlineMs ?? DEFAULT_STATS_DEADLINE_MS;
  const registry = new Registry();
  let connected = true;
  createProcessMetrics({ registry });
  const metrics = createAgentMetrics({ registry, node, nats: { connected: () => connected && !nc.isClosed(), rttMs: () => nc.rtt() } });
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') connected = false;
      else if (status.type === 'reconnect') connected = true;
    }
  })().catch(() => undefined);

  let server: MetricsServer | undefined;
  let statsTimer: NodeJS.Timeout | undefined;

  return {
    metrics,
    around(context, run) {
      if (!tracingActive()) return run();
      return withSpan(
        `virtbus.agent ${context.operation}`,
        { 'rpc.system': 'nats', 'rpc.method': context.operation, 'virtbus.node': node },
        () => run(),
        { parent: extractTraceContext((key) => context.headers.get(key) || undefined), kind: SpanKind.SERVER },
      );
    },
    onResult(operation, code, durationMs) {
      metrics.observeRequest(operation, code, durationMs / 1000);
    },
    onDriverError(driver, operation, error) {
      metrics.countDriverError(driver, operation, codeOf(error));
    },
    async start(manager, events, pools) {
      events.onPublished((event, lagSeconds) => metrics.observeEventPublishLag(event.type, lagSeconds));
      metrics.watchPendingStateWrites(() => manager.pendingWriteCount);
      events.onPublishFailure((event) => metrics.countEventPublishFailure(event.type));
      if (address) {
        createDomainMetrics({
          registry,
          node,
          cacheIntervalMs: config.metricsCacheMs ?? DEFAULT_METRICS_CACHE_MS,
          deadlineMs,
          source: {
            listDomains: async () => withJobs(manager.listings(), pools?.operations?.list() ?? []),
            // The driver gets a little longer than the collector, so a stuck domain is reported as timed out, not failed.
            // A scrape is no caller's request: its driver and QMP calls make no traces.
            domainStats: (uuid, { deadlineMs: bound }) => withoutTracing(() => manager.stats.driverStats(uuid, bound + DRIVER_DEADLINE_MARGIN_MS)),
            ...(pools ? { listPools: () => pools.list() } : {}),
          },
        });
        createNodeMetrics({ registry, node });
        server = await startMetricsServer({ registry, host: address.host, port: address.port, healthy: () => !nc.isClosed(), ready: () => busReady(nc) });
        logger.info({ url: `${server.url}/metrics` }, 'metrics serving');
      }
      if (statsIntervalS > 0) {
        let running = false;
        statsTimer = setInterval(() => {
          if (running) return;
          running = true;
          // the periodic sample is no caller's request: no parentless trace per running domain every interval
          Promise.all([readNodeStats(node), withoutTracing(() => manager.stats.all(deadlineMs))])
            .then(([host, domains]) => {
              // split below the bus max_payload: one message of 10,000 domains' stats is more than 1 MiB
              const { messages, skipped } = statsMessages({ kind: 'node.stats', node, collectedAt: new Date().toISOString(), host }, domains, nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD);
              if (skipped > 0) logger.warn({ skipped }, 'stats of domains larger than a bus message left out');
              for (const message of messages) nc.publish(Subjects.stats(node), message);
            })
            .catch((error: unknown) => logger.warn({ err: error }, 'stats not published'))
            .finally(() => (running = false));
        }, statsIntervalS * 1000);
        statsTimer.unref();
      }
      return server?.url;
    },
    async close() {
      clearInterval(statsTimer);
      await server?.close();
    },
  };
}

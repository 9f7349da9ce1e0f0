import { mkdir } from 'node:fs/promises';
import { Kvm } from '@nats-io/kv';
import type { Service } from '@nats-io/services';
import { connect, RequestError, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { NODES_BUCKET, Subjects, VirtError, isNodeName, type DriverInfo, type NodeRecord } from '@virtbus/api-contract';
import { DEFAULT_HEARTBEAT_INTERVAL_MS, RECONNECT_FOREVER, startHeartbeat, tuneNatsBuffers, untilJetStreamReady, type Heartbeat } from '@virtbus/client';
import { createDrivers, type DriverName, type DriverOptions } from '@virtbus/drivers';
import { pino, type Logger } from 'pino';
import { ConsoleHub } from './console-hub.js';
import { GraphicsHub } from './graphics-hub.js';
import { DomainManager } from './domains/manager.js';
import { DomainStore } from './domains/store.js';
import { DEFAULT_STREAM_LIMITS, EventPublisher, type EventStreamLimits } from './events/publisher.js';
import { createHandlers } from './handlers.js';
import { SnapshotService } from './snapshots/service.js';
import { StorageManager } from './storage/manager.js';
import { NetworkManager } from './networks/manager.js';
import { InterfaceManager } from './interfaces/manager.js';
import { MigrationManager, type MigrationSettings } from './migration/manager.js';
import { FirewallManager, type FirewallDomainSource } from './firewall/manager.js';
import { staticAddressesOf } from './firewall/addresses.js';
import { createAgentMonitoring, type AgentMonitoring, type AgentMonitoringConfig } from './monitoring.js';
import { serveOperations } from './service.js';
import { IdempotencyStore } from './idempotency.js';
import { StateDir, removeStaleTemps } from './state-dir.js';

export const AGENT_VERSION = '0.1.0';

export interface AgentConfig {
  node: string;
  /** NATS servers and connection options (TLS, credentials); `servers` is required. */
  nats: NodeConnectionOptions;
  stateDir: string;
  drivers: readonly DriverName[];
  /** Let the API configure the interfaces of the agent's own namespace (always allowed inside `netns`). */
  manageHostInterfaces?: boolean;
  /** Let virtual networks and bridge NICs change the agent's own namespace (always allowed inside `netns`). */
  manageHostNetworks?: boolean;
  driverOptions?: DriverOptions;
  streamLimits?: EventStreamLimits;
  /** Replicas of VIRT_EVENTS and the node registry bucket when this agent creates them; 3 on a clustered bus, else 1. */
  streamReplicas?: number;
  /** /metrics address, stats interval, scrape cache; /metrics on 127.0.0.1:9177 and stats every 10 s by default. */
  monitoring?: AgentMonitoringConfig;
  logger?: Logger;
  /** Network namespace (/run/netns/<name>) where this node's bridges, taps, dnsmasq and nft tables live. */
  netns?: string;
  /** How often the agent refreshes its node registry entry (the liveness signal of GET /v1/nodes); 5 s by default. */
  heartbeatIntervalMs?: number;
  /** Where incoming migrations listen (127.0.0.1 by default) and the migration TLS certificates. */
  migration?: Partial<MigrationSettings>;
}

export interface Agent {
  readonly node: string;
  readonly nc: NatsConnection;
  readonly manager: DomainManager;
  readonly events: EventPublisher;
  readonly storage: StorageManager;
  readonly firewall: FirewallManager;
  readonly networks: NetworkManager;
  /** Base URL of the metrics server (`…/metrics`), undefined when metrics are off. */
  readonly metricsUrl: string | undefined;
  /** Counts a rejection nothing handled (the process handler in main logs it). */
  countUnhandledRejection(): void;
  close(): Promise<void>;
}

/** Refuses to serve a node that a live agent already serves: requests would be split between two owners. */
async function assertNodeIsFree(nc: NatsConnection, node: string): Promise<void> {
  try {
    await nc.request(Subjects.request(node, 'ro', 'node.info'), '{}', { timeout: 1500 });
  } catch (error) {
    if (error instanceof RequestError && error.isNoResponders()) return;
    // a bus identity may not request its own node's verbs; nats-server then guards the subjects instead
    if (/permissions violation/i.test(String((error as Error).message))) return;
    throw new VirtError('OPERATION_INVALID', `node ${node} has a responder that does not answer; is another agent hung?`, { cause: error });
  }
  throw new VirtError('OPERATION_INVALID', `node ${node} is already served by a live agent`);
}

export async function startAgent(config: AgentConfig): Promise<Agent> {
  if (!isNodeName(config.node)) throw new VirtError('INVALID_ARG', `invalid node name ${JSON.stringify(config.node)}`);
  const logger = (config.logger ?? pino({ level: 'info' })).child({ node: config.node });
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
  const startedAt = new Date().toISOString();

  tuneNatsBuffers();
  const nc = await connect({ name: `virt-agent-${config.node}`, noAsyncTraces: true, ...RECONNECT_FOREVER, ...config.nats });
  let service: Service | undefined;
  let heartbeat: Heartbeat | undefined;
  let manager: DomainManager | undefined;
  let storage: StorageManager | undefined;
  let monitoring: AgentMonitoring | undefined;
  try {
    await assertNodeIsFree(nc, config.node);
    // only now: a live agent on this node (refused above) could be in the middle of a write
    const staleTemps = await removeStaleTemps(config.stateDir);
    if (staleTemps.length > 0) logger.info({ files: staleTemps }, `removed ${staleTemps.length} temp files of interrupted atomic writes`);
    // a clustered bus keeps the stream and the registry on three servers, so losing one loses nothing
    const replicas = config.streamReplicas ?? (nc.info?.cluster ? 3 : 1);
    const events = new EventPublisher(nc, config.node, config.stateDir, logger, { ...(config.streamLimits ?? DEFAULT_STREAM_LIMITS), replicas });
    await events.init();
    const drivers = createDrivers(config.drivers, config.driverOptions);
    const watch = createAgentMonitoring({ node: config.node, nc, logger, ...(config.monitoring ? { config: config.monitoring } : {}) });
    monitoring = watch;
    // Pools come up before domains: autostarted domains may run on pool volumes.
    const pools = new StorageManager({
      node: config.node,
      stateDir: config.stateDir,
      nc,
      events,
      logger,
      volumeUsers: (pool, volume) => manager?.domainsUsingVolume(pool, volume) ?? [],
    });
    storage = pools;
    await pools.init();
    const networks = new NetworkManager({
      node: config.node,
      stateDir: config.stateDir,
      ...(config.netns ? { netns: config.netns } : {}),
      manageHostNetworks: config.manageHostNetworks === true,
      events,
      logger,
    });
    // networks come up before domains, whose autostart may need them
    await networks.init();
    manager = new DomainManager({
      volumes: pools,
      networks,
      node: config.node,
      stateDir: config.stateDir,
      drivers,
      store: new DomainStore(config.stateDir, logger),
      events,
      logger,
      onDriverError: (driver, operation, error) => watch.onDriverError(driver, operation, error),
      ...(config.monitoring?.statsDeadlineMs !== undefined ? { statsDeadlineMs: config.monitoring.statsDeadlineMs } : {}),
    });
    const consoles = new ConsoleHub(nc, config.node, logger);
    const graphics = new GraphicsHub(nc, config.node, logger);
    events.onEvent((event) => {
      if (event.type === 'STOPPED' || event.type === 'CRASHED' || event.type === 'UNDEFINED') {
        const why = `domain ${event.name} ${event.type === 'UNDEFINED' ? 'undefined' : `${event.type.toLowerCase()} (${event.detail.toLowerCase()})`}`;
        consoles.forget(event.uuid, why);
        graphics.forget(event.uuid, why);
      }
    });
    // before the domains start: an autostarted domain with a managed save image resumes from it
    const snapshots = new SnapshotService({ stateDir: config.stateDir, manager, storage: pools, events, logger });
    await snapshots.init();
    events.onEvent((event) => {
      if (event.type === 'UNDEFINED') void snapshots.forget(event.uuid).catch((error: unknown) => logger.warn({ err: error, uuid: event.uuid }, 'snapshot metadata not removed'));
    });
    const firewall = new FirewallManager({ stateDir: config.stateDir, logger });
    await firewall.init();
    const domains = manager;
    const firewallSource: FirewallDomainSource = { record: (id) => domains.record(id), addressesOf: (network, mac) => staticAddressesOf(networks, network, mac) };
    firewall.useSource(firewallSource);
    // NIC filters follow the domain: applied when it runs, removed when it stops
    events.onEvent((event) => firewall.onLifecycle(event, firewallSource));
    await manager.init();
    await firewall.resync(manager.uuids(), firewallSource);
    const interfaces = new InterfaceManager({
      stateDir: config.stateDir,
      netns: config.netns,
      configurable: config.netns !== undefined || config.manageHostInterfaces === true,
      logger,
    });
    await interfaces.init();
    const mover = new MigrationManager({
      node: config.node,
      nc,
      stateDir: config.stateDir,
      domains: manager,
      operations: pools.operations,
      networks,
      storage: pools,
      onLifecycle: (listener) => events.onEvent(listener),
      logger,
      settings: { listenHost: config.migration?.listenHost ?? '127.0.0.1', ...(config.migration?.tlsDir ? { tlsDir: config.migration.tlsDir } : {}) },
    });
    await mover.init();
    // block jobs that outlived the previous agent process (SIGKILL, crash) are operations again
    void manager.blockJobs.adoptRunning(pools.operations, (domain, error) => logger.warn({ err: error, domain }, 'block jobs of the domain not re-tracked'));
    const driverInfo: DriverInfo[] = await Promise.all(drivers.map((driver) => driver.probe()));

    const kv = await untilJetStreamReady(`bucket ${NODES_BUCKET}`, () => new Kvm(nc).create(NODES_BUCKET, { history: 1, replicas }), { logger });
    const heartbeatIntervalMs = config.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
    const availableDrivers = driverInfo.filter((driver) => driver.available).map((driver) => driver.name);
    const domainsManager = manager;
    // the registry entry is the node list's source: identity, drivers, domain counts, refreshed as the liveness heartbeat
    const nodeRecord = (): NodeRecord => {
      const domains = domainsManager.counts();
      return {
        node: config.node,
        version: AGENT_VERSION,
        registeredAt: startedAt,
        startedAt,
        ...(service ? { serviceId: service.info().id } : {}),
        drivers: availableDrivers,
        domains,
      };
    };
    // a bucket just created on a cluster may have no stream leader yet: the first write waits like the creation
    const register = () =>
      untilJetStreamReady(`registration of ${config.node}`, () => kv.put(config.node, JSON.stringify({ ...nodeRecord(), heartbeatAt: new Date().toISOString(), heartbeatIntervalMs })), { logger });
    await register();

    const handlers = createHandlers({ node: config.node, version: AGENT_VERSION, startedAt, manager, consoles, graphics, driverInfo, storage: pools, networks, interfaces, migrations: mover, snapshots, firewall });
    const idempotency = new IdempotencyStore({ dir: StateDir.idempotency(config.stateDir), logger });
    await idempotency.init();
    service = await serveOperations({
      idempotency,
      nc,
      node: config.node,
      version: AGENT_VERSION,
      handlers,
      logger,
      around: (context, run) => watch.around(context, run),
      onResult: (operation, code, durationMs) => watch.onResult(operation, code, durationMs),
    });
    // written at once with the service id, then every interval
    await register();
    heartbeat = startHeartbeat({ kv, node: config.node, intervalMs: heartbeatIntervalMs, record: nodeRecord, logger });
    // the node list shows domain counts: a define, undefine or state change refreshes the entry within a second
    const beating = heartbeat;
    events.onEvent(() => beating.nudge());
    const metricsUrl = await watch.start(manager, events, pools);
    logger.info({ domains: manager.counts().total, drivers: config.drivers, metricsUrl: metricsUrl ? `${metricsUrl}/metrics` : 'off', processUptimeMs: Math.round(process.uptime() * 1000) }, 'agent serving');

    const ownedManager = manager;
    const ownedService = service;
    const ownedHeartbeat = heartbeat;
    return {
      node: config.node,
      nc,
      manager,
      events,
      storage: pools,
      networks,
      firewall,
      metricsUrl,
      countUnhandledRejection: () => watch.metrics.countUnhandledRejection(),
      async close() {
        await ownedHeartbeat.stop();
        await ownedService.stop().catch(() => undefined);
        await watch.close().catch(() => undefined);
        consoles.closeAll();
        graphics.closeAll();
        interfaces.close();
        await firewall.idle();
        await pools.close();
        await events.drain(2000);
        await events.close();
        await ownedManager.close();
        // last: no domain changes after it, so the next start may load every record from it
        await ownedManager.writeCleanSnapshot().catch((error: unknown) => logger.warn({ err: error }, 'clean-stop snapshot not written; the next start reads the domain files'));
        await nc.drain().catch(() => nc.close());
      },
    };
  } catch (error) {
    await heartbeat?.stop({ markStopped: false });
    await service?.stop().catch(() => undefined);
    await monitoring?.close().catch(() => undefined);
    await storage?.close().catch(() => undefined);
    await manager?.close().catch(() => undefined);
    await nc.close();
    throw error;
  }
}

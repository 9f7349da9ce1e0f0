import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { VirtError } from '@virtbus/api-contract';
import { DriverNames, assertNetnsName, type DriverName } from '@virtbus/drivers';
import { assertSecureListen, daemonEnvironment, NATS_IDENTITY_OPTIONS, natsClientConfigFromFlags, natsConnectionOptions } from '@virtbus/security';
import type { AgentConfig } from './agent.js';
import { DEFAULT_STREAM_LIMITS } from './events/publisher.js';
import { DEFAULT_METRICS_ADDRESS, DEFAULT_METRICS_CACHE_MS, DEFAULT_STATS_DEADLINE_MS, DEFAULT_STATS_INTERVAL_S, parseMetricsAddress } from './monitoring.js';

/** A node name from the host name: subject-safe characters only. */
export function nodeNameFromHost(host = hostname()): string {
  const name = host.split('.')[0]!.replace(/[^A-Za-z0-9_-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 63);
  return name || 'node';
}

export function defaultStateDir(node: string): string {
  return process.getuid?.() === 0 ? join('/var/lib/virtbus', node) : join(homedir(), '.local/state/virtbus', node);
}

export function parseDriverList(text: string): DriverName[] {
  const names = text.split(',').map((name) => name.trim()).filter(Boolean);
  for (const name of names) {
    if (!(DriverNames as string[]).includes(name)) throw new VirtError('INVALID_ARG', `unknown driver ${name}; known: ${DriverNames.join(', ')}`);
  }
  return names as DriverName[];
}

/** The agent's config file when no --config names one (read only if it exists). */
export const AGENT_CONFIG_FILE = '/etc/virtbus/agent.env';

export const USAGE = `virtbus agent: serves one node's hypervisors on NATS

  --config FILE        KEY=VALUE lines of the environment variables below (default: ${AGENT_CONFIG_FILE} if it exists;
                       none = no file); the process environment and flags override it
  --node NAME          node name (default: VIRTBUS_NODE or the host name)
  --nats URL           NATS server URL(s), comma separated (default: NATS_URL or nats://127.0.0.1:4222)
  --state-dir DIR      durable state (default: VIRTBUS_STATE_DIR or /var/lib/virtbus/<node>)
  --drivers LIST       drivers to load (default: VIRTBUS_DRIVERS or all: ${DriverNames.join(',')}; libvirt only with --libvirt-uri)
  --libvirt-uri URI    front this host's libvirtd as driver libvirt: qemu:///system, xen:///system, vz:///system, test:///default,
                       qemu+unix:///system?socket=PATH, qemu+tls://HOST/system[?pkipath=DIR]
                       (default: VIRTBUS_LIBVIRT_URI; none = no libvirt driver; VIRTBUS_LIBVIRT_ROOT: libvirtd's / as seen
                       here, e.g. /host in a container, to reach the VNC sockets libvirt makes)
  --libvirt-peer-uri U how other hosts' libvirtds reach this one for a migration here, e.g. qemu+tls://HOST/system
                       (default: VIRTBUS_LIBVIRT_PEER_URI or --libvirt-uri, right only for agents on one host)
  --log-level LEVEL    pino level (default: VIRTBUS_LOG_LEVEL or info)
  --netns NAME         keep this node's bridges, taps, dnsmasq and nft tables in network namespace /run/netns/NAME (default: VIRTBUS_NETNS)
  --metrics-address A  host:port of /metrics, or off (default: VIRTBUS_METRICS_ADDRESS or 127.0.0.1:9177; port 0 = any)
  --metrics-cache-ms N scrapes within N ms of the last collection reuse it (default: VIRTBUS_METRICS_CACHE_MS or 5000)
  --stats-deadline-ms N  a domain's stats may take this long in a scrape or bulk call (default: VIRTBUS_STATS_DEADLINE_MS or 2000)
  --stats-interval S   seconds between stats messages on virt.v1.<node>.stats, 0 = off (default: VIRTBUS_STATS_INTERVAL or 10)
  --stream-replicas N  replicas of VIRT_EVENTS and the node registry when this agent creates them (default:
                       VIRTBUS_STREAM_REPLICAS, or 3 when the NATS server is part of a cluster, else 1)
  --heartbeat-interval S  seconds between node registry heartbeats (default: VIRTBUS_HEARTBEAT_INTERVAL or 5)
  --events-max-age S   seconds the VIRT_EVENTS stream keeps events (default: VIRTBUS_EVENTS_MAX_AGE or 604800 = 7 days)
  --events-max-messages N  events the VIRT_EVENTS stream keeps in all (default: VIRTBUS_EVENTS_MAX_MESSAGES or 1000000)
  --nats-ca FILE       CA certificate for the NATS server (default: NATS_CA); any TLS option means TLS only
  --nats-cert FILE     client certificate of this agent's identity (default: NATS_CERT)
  --nats-key FILE      its private key (default: NATS_KEY)
  --nats-creds FILE    a .creds file (JWT + nkey seed) instead (default: NATS_CREDS)
  --nats-inbox-prefix P  reply inbox prefix, _INBOX.<identity> (default: NATS_INBOX_PREFIX)
  --manage-host-interfaces  let the API change this host's own interfaces (VIRTBUS_MANAGE_HOST_INTERFACES=1; implied inside --netns)
  --manage-host-networks  let virtual networks create bridges, dnsmasq and nft tables in the agent's own namespace (VIRTBUS_MANAGE_HOST_NETWORKS=1; implied inside --netns)
  --migration-address A  address incoming migrations listen on (default: VIRTBUS_MIGRATION_ADDRESS or 127.0.0.1)
  --migration-tls-dir D  QEMU x509 files (ca-cert.pem, server-cert.pem/-key.pem, client-cert.pem/-key.pem) for TLS migrations
                         (default: VIRTBUS_MIGRATION_TLS_DIR)
  --allow-insecure-nats  connect in plaintext to a non-loopback server anyway (VIRTBUS_NATS_ALLOW_INSECURE=1)
  --allow-insecure-listen  serve /metrics, and incoming migrations without --migration-tls-dir, on a non-loopback
                       address anyway (VIRTBUS_ALLOW_INSECURE_LISTEN=1)
`;

function numberOption(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) throw new VirtError('INVALID_ARG', `${name} must be a number ≥ 0, got ${JSON.stringify(text)}`);
  return value;
}

function streamReplicasOption(text: string | undefined): { streamReplicas?: number } {
  if (text === undefined || text === '') return {};
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > 5) throw new VirtError('INVALID_ARG', `--stream-replicas must be an integer from 1 to 5, got ${JSON.stringify(text)}`);
  return { streamReplicas: value };
}

function netnsOption(name: string | undefined): { netns?: string } {
  if (!name) return {};
  assertNetnsName(name);
  return { netns: name };
}

export interface AgentCliConfig extends AgentConfig {
  logLevel: string;
}

export function configFromArgs(argv: string[], processEnv: NodeJS.ProcessEnv = process.env): AgentCliConfig | 'help' {
  const env = daemonEnvironment(argv, AGENT_CONFIG_FILE, processEnv);
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      node: { type: 'string' },
      nats: { type: 'string' },
      'state-dir': { type: 'string' },
      drivers: { type: 'string' },
      'libvirt-uri': { type: 'string' },
      'libvirt-peer-uri': { type: 'string' },
      'log-level': { type: 'string' },
      netns: { type: 'string' },
      'test-latency-ms': { type: 'string' },
      'metrics-address': { type: 'string' },
      'metrics-cache-ms': { type: 'string' },
      'stats-interval': { type: 'string' },
      'stats-deadline-ms': { type: 'string' },
      'events-max-age': { type: 'string' },
      'heartbeat-interval': { type: 'string' },
      'stream-replicas': { type: 'string' },
      'events-max-messages': { type: 'string' },
      'migration-address': { type: 'string' },
      'migration-tls-dir': { type: 'string' },
      'allow-insecure-listen': { type: 'boolean' },
      ...NATS_IDENTITY_OPTIONS,
      'manage-host-interfaces': { type: 'boolean' },
      'manage-host-networks': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const node = values.node ?? env.VIRTBUS_NODE ?? nodeNameFromHost();
  const libvirtUri = values['libvirt-uri'] ?? env.VIRTBUS_LIBVIRT_URI;
  const libvirtPeerUri = values['libvirt-peer-uri'] ?? env.VIRTBUS_LIBVIRT_PEER_URI;
  // the libvirt driver fronts a daemon that must be named: it is in the default list only with its URI
  const drivers = parseDriverList(values.drivers ?? env.VIRTBUS_DRIVERS ?? DriverNames.filter((name) => name !== 'libvirt' || libvirtUri).join(','));
  if (drivers.includes('libvirt') && !libvirtUri) throw new VirtError('INVALID_ARG', 'driver libvirt needs --libvirt-uri (or VIRTBUS_LIBVIRT_URI)');
  const latency = Number(values['test-latency-ms'] ?? env.VIRTBUS_TEST_DRIVER_LATENCY_MS ?? 0);
  // refuses plaintext to a non-loopback server before anything connects
  const nats = natsConnectionOptions(natsClientConfigFromFlags(values, env));
  // the listeners too, before the state directory or the network is touched
  const allowInsecure = values['allow-insecure-listen'] === true || env.VIRTBUS_ALLOW_INSECURE_LISTEN === '1';
  const metricsAddress = values['metrics-address'] ?? env.VIRTBUS_METRICS_ADDRESS ?? DEFAULT_METRICS_ADDRESS;
  const metrics = parseMetricsAddress(metricsAddress);
  if (metrics) {
    assertSecureListen(metrics.host, { tls: false, allowInsecure, action: 'serve /metrics on', remedy: 'use a loopback address (a local scraper or proxy), or force it with --allow-insecure-listen' });
  }
  const migrationHost = values['migration-address'] ?? env.VIRTBUS_MIGRATION_ADDRESS ?? '127.0.0.1';
  const migrationTlsDir = values['migration-tls-dir'] ?? env.VIRTBUS_MIGRATION_TLS_DIR;
  assertSecureListen(migrationHost, {
    tls: Boolean(migrationTlsDir),
    allowInsecure,
    action: 'listen for migrations on',
    remedy: 'give the migration certificates with --migration-tls-dir, use a loopback address, or force it with --allow-insecure-listen',
  });
  return {
    node,
    nats,
    stateDir: values['state-dir'] ?? env.VIRTBUS_STATE_DIR ?? defaultStateDir(node),
    drivers,
    driverOptions: {
      test: { latencyMs: latency },
      ...(libvirtUri ? { libvirt: { uri: libvirtUri, ...(libvirtPeerUri ? { peerUri: libvirtPeerUri } : {}), ...(env.VIRTBUS_LIBVIRT_ROOT ? { root: env.VIRTBUS_LIBVIRT_ROOT } : {}) } } : {}),
    },
    monitoring: {
      metricsAddress,
      metricsCacheMs: numberOption('--metrics-cache-ms', values['metrics-cache-ms'] ?? env.VIRTBUS_METRICS_CACHE_MS, DEFAULT_METRICS_CACHE_MS),
      statsDeadlineMs: numberOption('--stats-deadline-ms', values['stats-deadline-ms'] ?? env.VIRTBUS_STATS_DEADLINE_MS, DEFAULT_STATS_DEADLINE_MS),
      statsIntervalS: numberOption('--stats-interval', values['stats-interval'] ?? env.VIRTBUS_STATS_INTERVAL, DEFAULT_STATS_INTERVAL_S),
    },
    streamLimits: {
      maxAgeMs: numberOption('--events-max-age', values['events-max-age'] ?? env.VIRTBUS_EVENTS_MAX_AGE, DEFAULT_STREAM_LIMITS.maxAgeMs / 1000) * 1000,
      maxMessages: numberOption('--events-max-messages', values['events-max-messages'] ?? env.VIRTBUS_EVENTS_MAX_MESSAGES, DEFAULT_STREAM_LIMITS.maxMessages),
    },
    ...streamReplicasOption(values['stream-replicas'] ?? env.VIRTBUS_STREAM_REPLICAS),
    heartbeatIntervalMs: Math.max(0.1, numberOption('--heartbeat-interval', values['heartbeat-interval'] ?? env.VIRTBUS_HEARTBEAT_INTERVAL, 5)) * 1000,
    manageHostInterfaces: values['manage-host-interfaces'] === true || env.VIRTBUS_MANAGE_HOST_INTERFACES === '1',
    manageHostNetworks: values['manage-host-networks'] === true || env.VIRTBUS_MANAGE_HOST_NETWORKS === '1',
    migration: {
      listenHost: migrationHost,
      ...(migrationTlsDir ? { tlsDir: migrationTlsDir } : {}),
    },
    logLevel: values['log-level'] ?? env.VIRTBUS_LOG_LEVEL ?? 'info',
    ...netnsOption(values.netns ?? env.VIRTBUS_NETNS),
  };
}

import { Kvm } from '@nats-io/kv';
import { Svcm, type Service } from '@nats-io/services';
import { connect, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { createHash } from 'node:crypto';
import {
  AGENT_SERVICE_NAME,
  NODES_BUCKET,
  OperationNames,
  Operations,
  PAGE_ENVELOPE_BYTES,
  Subjects,
  takePage,
  VirtError,
  type Domain,
  type DomainListRequest,
  type NodeInfo,
  type NodeRecord,
} from '@virtbus/api-contract';
import { RECONNECT_FOREVER, startHeartbeat, type Heartbeat } from '@virtbus/client';

export interface SimulatedFleetOptions {
  nats: NodeConnectionOptions;
  nodes: number;
  /** Node names are `<prefix><index>` (default `sim-`). */
  prefix?: string;
  heartbeatIntervalMs?: number;
  /** Nodes per NATS connection (default 100): one connection would hold every endpoint subscription of the fleet. */
  nodesPerConnection?: number;
  /** Domains each node holds (default 0), listed by `domain.list` and `domain.get`. */
  domainsPerNode?: number;
}

export interface SimulatedFleet {
  readonly names: readonly string[];
  close(): Promise<void>;
}

function nodeInfo(node: string, startedAt: string): NodeInfo {
  return {
    node,
    hostname: node,
    agentVersion: '0.1.0-sim',
    apiVersion: 'v1',
    startedAt,
    cpu: { model: 'simulated', count: 4, sockets: 1, coresPerSocket: 4, threadsPerCore: 1, mhz: 2000 },
    memory: { totalBytes: 8 << 30, freeBytes: 4 << 30, availableBytes: 4 << 30 },
    numa: [],
    drivers: [{ name: 'test', domainTypes: ['test'], available: true, capabilities: [] }],
  };
}

/** A stable UUID per (node, index), so every run lists the same fleet. */
function uuidOf(node: string, index: number): string {
  const hex = createHash('sha256').update(`${node}/${index}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** The node's simulated domains in (name, uuid) order: every other one running, each with a label. */
function domainsOf(node: string, count: number, at: string): Domain[] {
  return Array.from({ length: count }, (_, index) => {
    const name = `vm-${String(index).padStart(4, '0')}`;
    const uuid = uuidOf(node, index);
    const running = index % 2 === 0;
    return {
      uuid,
      name,
      node,
      driver: 'test',
      state: running ? 'running' : 'shutoff',
      reason: running ? 'booted' : 'unknown',
      persistent: true,
      autostart: false,
      config: { name, uuid, driver: 'test', vcpus: 1, memory: 64, os: {}, disks: [], nics: [], console: { type: 'serial' }, autostart: false, labels: { tier: index % 3 === 0 ? 'db' : 'web' } },
      stateChangedAt: at,
    } satisfies Domain;
  });
}

/**
 * Many test-driver nodes in one process, as the fleet sees them: each a `virt-agent` NATS service with every
 * operation's endpoint (so `$SRV.INFO` replies are as large as a real agent's) and a registry heartbeat. Only
 * `node.info`, `domain.list` (paged; filters are not simulated) and `domain.get` answer; the rest say OPERATION_UNSUPPORTED.
 */
export async function startSimulatedFleet(options: SimulatedFleetOptions): Promise<SimulatedFleet> {
  const prefix = options.prefix ?? 'sim-';
  const perConnection = options.nodesPerConnection ?? 100;
  const names = Array.from({ length: options.nodes }, (_, index) => `${prefix}${String(index).padStart(4, '0')}`);
  const connections: NatsConnection[] = [];
  const services: Service[] = [];
  const heartbeats: Heartbeat[] = [];
  const startedAt = new Date().toISOString();
  try {
    for (let first = 0; first < names.length; first += perConnection) {
      const nc = await connect({ ...RECONNECT_FOREVER, ...options.nats, name: `virtbus-sim-${first}` });
      connections.push(nc);
      const kv = await new Kvm(nc).create(NODES_BUCKET, { history: 1 });
      const svcm = new Svcm(nc);
      for (const node of names.slice(first, first + perConnection)) {
        const service = await svcm.add({ name: AGENT_SERVICE_NAME, version: '0.1.0-sim', description: `simulated node ${node}`, metadata: { node, api: 'v1' } });
        services.push(service);
        const info = JSON.stringify({ result: nodeInfo(node, startedAt) });
        const domains = domainsOf(node, options.domainsPerNode ?? 0, startedAt);
        const maxBytes = nc.info!.max_payload - PAGE_ENVELOPE_BYTES;
        const answer = (operation: string, data: Uint8Array): string => {
          if (operation === 'node.info') return info;
          if (operation === 'domain.list') {
            const query = JSON.parse(new TextDecoder().decode(data)) as DomainListRequest;
            const page = takePage(domains, { keyOf: (domain) => [domain.name, domain.uuid], view: (domain) => domain, query, maxBytes });
            return JSON.stringify({ result: { domains: page.items, ...(page.continue ? { continue: page.continue, remaining: page.remaining } : {}) } });
          }
          if (operation === 'domain.get') {
            const { id } = JSON.parse(new TextDecoder().decode(data)) as { id: string };
            const found = domains.find((domain) => domain.uuid === id || domain.name === id);
            if (found) return JSON.stringify({ result: found });
            return JSON.stringify({ error: new VirtError('NO_DOMAIN', `no domain ${id} on ${node}`).toBody() });
          }
          return JSON.stringify({ error: new VirtError('OPERATION_UNSUPPORTED', `${operation} is not simulated`).toBody() });
        };
        for (const operation of OperationNames) {
          service.addEndpoint(operation.replaceAll('.', '_'), {
            subject: Subjects.request(node, Operations[operation].access, operation),
            metadata: { operation, access: Operations[operation].access },
            handler: (error, msg) => {
              if (error) return;
              try {
                msg.respond(answer(operation, msg.data));
              } catch (failure) {
                const error = VirtError.is(failure) ? failure : new VirtError('INVALID_ARG', (failure as Error).message, { cause: failure });
                msg.respond(JSON.stringify({ error: error.toBody() }));
              }
            },
          });
        }
        const record = (): NodeRecord => ({ node, version: '0.1.0-sim', registeredAt: startedAt, startedAt, serviceId: service.info().id, drivers: ['test'], domains: { total: domains.length, running: domains.filter((domain) => domain.state === 'running').length } });
        const intervalMs = options.heartbeatIntervalMs ?? 5000;
        await kv.put(node, JSON.stringify({ ...record(), heartbeatAt: new Date().toISOString(), heartbeatIntervalMs: intervalMs }));
        heartbeats.push(startHeartbeat({ kv, node, intervalMs, record }));
      }
    }
  } catch (error) {
    await Promise.all(connections.map((nc) => nc.close()));
    throw error;
  }
  return {
    names,
    async close() {
      await Promise.all(heartbeats.map((heartbeat) => heartbeat.stop()));
      await Promise.all(services.map((service) => service.stop().catch(() => undefined)));
      await Promise.all(connections.map((nc) => nc.drain().catch(() => nc.close())));
    },
  };
}

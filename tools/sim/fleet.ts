import { Kvm } from '@nats-io/kv';
import { Svcm, type Service } from '@nats-io/services';
import { connect, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { AGENT_SERVICE_NAME, NODES_BUCKET, OperationNames, Operations, Subjects, VirtError, type NodeInfo, type NodeRecord } from '@virtbus/api-contract';
import { RECONNECT_FOREVER, startHeartbeat, type Heartbeat } from '@virtbus/client';

export interface SimulatedFleetOptions {
  nats: NodeConnectionOptions;
  nodes: number;
  /** Node names are `<prefix><index>` (default `sim-`). */
  prefix?: string;
  heartbeatIntervalMs?: number;
  /** Nodes per NATS connection (default 100): one connection would hold every endpoint subscription of the fleet. */
  nodesPerConnection?: number;
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

/**
 * Many test-driver nodes in one process, as the fleet sees them: each a `virt-agent` NATS service with every
 * operation's endpoint (so `$SRV.INFO` replies are as large as a real agent's) and a registry heartbeat. Only
 * `node.info` and `domain.list` answer; the rest say OPERATION_UNSUPPORTED.
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
        for (const operation of OperationNames) {
          service.addEndpoint(operation.replaceAll('.', '_'), {
            subject: Subjects.request(node, Operations[operation].access, operation),
            metadata: { operation, access: Operations[operation].access },
            handler: (error, msg) => {
              if (error) return;
              if (operation === 'node.info') msg.respond(info);
              else if (operation === 'domain.list') msg.respond(JSON.stringify({ result: { domains: [] } }));
              else msg.respond(JSON.stringify({ error: new VirtError('OPERATION_UNSUPPORTED', `${operation} is not simulated`).toBody() }));
            },
          });
        }
        const record = (): NodeRecord => ({ node, version: '0.1.0-sim', registeredAt: startedAt, startedAt, serviceId: service.info().id, drivers: ['test'], domains: { total: 0, running: 0 } });
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

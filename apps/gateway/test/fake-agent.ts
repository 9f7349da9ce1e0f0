import { Svcm, type Service } from '@nats-io/services';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  AGENT_SERVICE_NAME,
  NODES_BUCKET,
  OperationNames,
  Operations,
  Subjects,
  VirtError,
  type Domain,
  type NodeRecord,
  type OperationName,
  type ReplyEnvelope,
} from '@virtbus/api-contract';
import { startHeartbeat, type Heartbeat } from '@virtbus/client';
import { testDomainConfig } from '@virtbus/testing';

/** What a handler returns: a reply envelope to send, or `'silent'` to never answer. */
export type Answer = ReplyEnvelope | 'silent';
export type Handler = (request: unknown, headers: Record<string, string>) => Answer | Promise<Answer>;

export interface ReceivedCall {
  operation: OperationName;
  request: unknown;
  headers: Record<string, string>;
}

export interface FakeAgent {
  readonly calls: ReceivedCall[];
  readonly serviceId: string;
  handle(operation: OperationName, handler: Handler): void;
  stop(): Promise<void>;
}

/** A real NATS service speaking the agent protocol with canned answers: a peer for the gateway's routing tests. */
export async function startFakeAgent(nc: NatsConnection, node: string, options: { heartbeat?: boolean } = {}): Promise<FakeAgent> {
  const handlers = new Map<OperationName, Handler>();
  const calls: ReceivedCall[] = [];
  const service: Service = await new Svcm(nc).add({ name: AGENT_SERVICE_NAME, version: '0.0.1-test', metadata: { node } });
  for (const operation of OperationNames) {
    service.addEndpoint(operation.replaceAll('.', '_'), {
      subject: Subjects.request(node, Operations[operation].access, operation),
      handler: (error, message) => {
        if (error) return;
        const headers: Record<string, string> = {};
        for (const key of message.headers?.keys() ?? []) headers[key] = message.headers?.get(key) ?? '';
        const request: unknown = message.json();
        calls.push({ operation, request, headers });
        const handler = handlers.get(operation);
        void (async () => {
          const answer: Answer = handler
            ? await handler(request, headers)
            : { error: new VirtError('OPERATION_UNSUPPORTED', `${operation} is not implemented by the fake agent`).toBody() };
          if (answer !== 'silent') message.respond(JSON.stringify(answer));
        })();
      },
    });
  }
  // like a real agent: a node registry entry refreshed as the liveness heartbeat (the node list reads only that)
  const registeredAt = new Date().toISOString();
  const record = (): NodeRecord => ({ node, version: '0.0.1-test', registeredAt, startedAt: registeredAt, serviceId: service.info().id, drivers: ['test'], domains: { total: 1, running: 0 } });
  let heartbeat: Heartbeat | undefined;
  if (options.heartbeat !== false) {
    const kv = await new Kvm(nc).create(NODES_BUCKET, { history: 1 });
    await kv.put(node, JSON.stringify({ ...record(), heartbeatAt: registeredAt, heartbeatIntervalMs: 1000 }));
    heartbeat = startHeartbeat({ kv, node, intervalMs: 1000, record });
  }
  return {
    calls,
    serviceId: service.info().id,
    handle: (operation, handler) => handlers.set(operation, handler),
    stop: async () => {
      await heartbeat?.stop();
      await service.stop();
    },
  };
}

export function sampleDomain(node: string, overrides: Partial<Domain> = {}): Domain {
  const uuid = overrides.uuid ?? '6f1c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f';
  const name = overrides.name ?? 'web1';
  return {
    uuid,
    name,
    node,
    driver: 'test',
    state: 'shutoff',
    reason: 'unknown',
    persistent: true,
    autostart: false,
    config: testDomainConfig({ name, uuid, driver: 'test', memory: 128 }),
    stateChangedAt: '2025-01-01T00:00:00.000Z',
    ...overrides,
  };
}

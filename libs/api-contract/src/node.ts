import Type, { type Static } from 'typebox';
import { Count } from './names.js';
import { DomainDriver } from './domain.js';
import { PageResponseFields } from './paging.js';

export const NumaCell = Type.Object(
  {
    id: Count,
    cpus: Type.Array(Count),
    memoryTotalBytes: Count,
    memoryFreeBytes: Count,
  },
  { additionalProperties: false },
);

export const DriverInfo = Type.Object(
  {
    name: Type.String(),
    domainTypes: Type.Array(DomainDriver),
    available: Type.Boolean(),
    detail: Type.Optional(Type.String({ description: 'Why it is unavailable, or what it runs on' })),
    capabilities: Type.Array(Type.String(), { description: 'Optional API groups the driver implements' }),
  },
  { additionalProperties: false },
);
export type DriverInfo = Static<typeof DriverInfo>;

export const NodeInfo = Type.Object(
  {
    node: Type.String(),
    hostname: Type.String(),
    agentVersion: Type.String(),
    apiVersion: Type.Literal('v1'),
    startedAt: Type.String({ format: 'date-time' }),
    cpu: Type.Object(
      {
        model: Type.String(),
        count: Count,
        sockets: Count,
        coresPerSocket: Count,
        threadsPerCore: Count,
        mhz: Type.Number({ minimum: 0 }),
      },
      { additionalProperties: false },
    ),
    memory: Type.Object(
      { totalBytes: Count, freeBytes: Count, availableBytes: Count },
      { additionalProperties: false },
    ),
    numa: Type.Array(NumaCell),
    drivers: Type.Array(DriverInfo),
  },
  { additionalProperties: false, title: 'NodeInfo' },
);
export type NodeInfo = Static<typeof NodeInfo>;

/** How many of a node's domains there are, and how many run: the registry's small summary. */
export const NodeDomainCounts = Type.Object(
  { total: Count, running: Count },
  { additionalProperties: false, title: 'NodeDomainCounts' },
);

export const NodeSummary = Type.Object(
  {
    node: Type.String(),
    id: Type.String({ description: 'NATS service instance id' }),
    version: Type.String(),
    online: Type.Boolean({ description: 'A heartbeat arrived within the bound the list states (onlineWithinSeconds), the agent did not stop, and no call found it gone since' }),
    startedAt: Type.Optional(Type.String({ format: 'date-time', description: 'When the agent started' })),
    lastHeartbeat: Type.Optional(Type.String({ format: 'date-time', description: 'When the bus stored the last heartbeat of the agent' })),
    drivers: Type.Optional(Type.Array(Type.String(), { description: 'Drivers available on the node' })),
    domains: Type.Optional(NodeDomainCounts),
  },
  { additionalProperties: false, title: 'NodeSummary' },
);
export type NodeSummary = Static<typeof NodeSummary>;

export const NodeList = Type.Object(
  {
    nodes: Type.Array(NodeSummary),
    ...PageResponseFields,
    onlineWithinSeconds: Type.Optional(
      Type.Number({ minimum: 0, description: 'A node counts as online when its last heartbeat is younger than this (or three of its own heartbeat intervals, if longer)' }),
    ),
  },
  { additionalProperties: false, title: 'NodeList' },
);
export type NodeList = Static<typeof NodeList>;

/**
 * What an agent keeps under its node name in the `virt_nodes` KV bucket: written at start, refreshed every
 * `heartbeatIntervalMs` (the liveness signal), marked `stoppedAt` on a clean stop. Readers ignore unknown fields.
 */
export const NodeRecord = Type.Object(
  {
    node: Type.String(),
    version: Type.String(),
    registeredAt: Type.String({ format: 'date-time', description: 'When this agent process registered (its start)' }),
    startedAt: Type.Optional(Type.String({ format: 'date-time' })),
    heartbeatAt: Type.Optional(Type.String({ format: 'date-time', description: "The agent's clock at this heartbeat (informational; liveness uses the bus's time)" })),
    heartbeatIntervalMs: Type.Optional(Type.Integer({ minimum: 1 })),
    serviceId: Type.Optional(Type.String({ description: 'NATS service instance id of the agent' })),
    drivers: Type.Optional(Type.Array(Type.String())),
    domains: Type.Optional(NodeDomainCounts),
    stoppedAt: Type.Optional(Type.String({ format: 'date-time', description: 'Set by a clean stop: the node is offline at once' })),
  },
  { title: 'NodeRecord' },
);
export type NodeRecord = Static<typeof NodeRecord>;

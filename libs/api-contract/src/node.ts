import Type, { type Static } from 'typebox';
import { DomainDriver } from './domain.js';

export const NumaCell = Type.Object(
  {
    id: Type.Integer({ minimum: 0 }),
    cpus: Type.Array(Type.Integer({ minimum: 0 })),
    memoryTotalBytes: Type.Integer({ minimum: 0 }),
    memoryFreeBytes: Type.Integer({ minimum: 0 }),
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
        count: Type.Integer({ minimum: 0 }),
        sockets: Type.Integer({ minimum: 0 }),
        coresPerSocket: Type.Integer({ minimum: 0 }),
        threadsPerCore: Type.Integer({ minimum: 0 }),
        mhz: Type.Number({ minimum: 0 }),
      },
      { additionalProperties: false },
    ),
    memory: Type.Object(
      { totalBytes: Type.Integer({ minimum: 0 }), freeBytes: Type.Integer({ minimum: 0 }), availableBytes: Type.Integer({ minimum: 0 }) },
      { additionalProperties: false },
    ),
    numa: Type.Array(NumaCell),
    drivers: Type.Array(DriverInfo),
  },
  { additionalProperties: false, title: 'NodeInfo' },
);
export type NodeInfo = Static<typeof NodeInfo>;

export const NodeSummary = Type.Object(
  {
    node: Type.String(),
    id: Type.String({ description: 'NATS service instance id' }),
    version: Type.String(),
    online: Type.Boolean(),
  },
  { additionalProperties: false, title: 'NodeSummary' },
);
export type NodeSummary = Static<typeof NodeSummary>;

export const NodeList = Type.Object({ nodes: Type.Array(NodeSummary) }, { additionalProperties: false, title: 'NodeList' });
export type NodeList = Static<typeof NodeList>;

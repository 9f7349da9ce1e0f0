import Type, { type Static } from 'typebox';
import { DomainState, StateReason } from './domain.js';
import { Uuid } from './names.js';

const Counter = Type.Integer({ minimum: 0 });

/** One domain's stats in the groups of libvirt's virConnectGetAllDomainStats; absent groups are unsupported. */
export const DomainStats = Type.Object(
  {
    uuid: Uuid,
    name: Type.String(),
    state: DomainState,
    reason: StateReason,
    collectedAt: Type.String({ format: 'date-time' }),
    cpu: Type.Optional(
      Type.Object(
        { timeNs: Counter, userNs: Type.Optional(Counter), systemNs: Type.Optional(Counter) },
        { additionalProperties: false, description: 'cpu-total group' },
      ),
    ),
    memory: Type.Optional(
      Type.Object(
        {
          maximumBytes: Counter,
          currentBytes: Type.Optional(Counter),
          rssBytes: Type.Optional(Counter),
          usableBytes: Type.Optional(Counter),
          unusedBytes: Type.Optional(Counter),
          availableBytes: Type.Optional(Counter),
          limitBytes: Type.Optional(Counter),
        },
        { additionalProperties: false, description: 'balloon group (and cgroup memory for containers)' },
      ),
    ),
    vcpu: Type.Optional(
      Type.Object(
        {
          current: Counter,
          maximum: Counter,
          list: Type.Array(Type.Object({ id: Counter, state: Type.Enum(['offline', 'running', 'blocked']), timeNs: Type.Optional(Counter) }, { additionalProperties: false })),
        },
        { additionalProperties: false },
      ),
    ),
    block: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.String(),
            path: Type.Optional(Type.String()),
            readRequests: Counter,
            readBytes: Counter,
            readTimeNs: Counter,
            writeRequests: Counter,
            writeBytes: Counter,
            writeTimeNs: Counter,
            flushRequests: Type.Optional(Counter),
            capacityBytes: Type.Optional(Counter),
            allocationBytes: Type.Optional(Counter),
          },
          { additionalProperties: false },
        ),
      ),
    ),
    net: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.String(),
            rxBytes: Counter,
            rxPackets: Counter,
            rxErrors: Counter,
            rxDrops: Counter,
            txBytes: Counter,
            txPackets: Counter,
            txErrors: Counter,
            txDrops: Counter,
          },
          { additionalProperties: false },
        ),
      ),
    ),
    pids: Type.Optional(Type.Object({ current: Counter, limit: Type.Optional(Counter) }, { additionalProperties: false })),
  },
  { additionalProperties: false, title: 'DomainStats' },
);
export type DomainStats = Static<typeof DomainStats>;

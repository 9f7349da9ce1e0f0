import Type, { type Static } from 'typebox';
import { DomainState, StateReason } from './domain.js';
import { Uuid } from './names.js';
import { PageRequestFields, PageResponseFields } from './paging.js';

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
    timedOut: Type.Optional(
      Type.Boolean({ description: 'The hypervisor missed the collection deadline: the groups are the last good values, or absent' }),
    ),
  },
  { additionalProperties: false, title: 'DomainStats' },
);
export type DomainStats = Static<typeof DomainStats>;

/** Host CPU modes in /proc/stat column order. */
export const CpuModes = ['user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal'] as const;

const Seconds = Type.Number({ minimum: 0 });

/** Host-level stats of one node: CPU seconds by mode (all CPUs summed), memory, free memory per NUMA cell. */
export const NodeStats = Type.Object(
  {
    node: Type.String(),
    collectedAt: Type.String({ format: 'date-time' }),
    cpu: Type.Object(
      { user: Seconds, nice: Seconds, system: Seconds, idle: Seconds, iowait: Seconds, irq: Seconds, softirq: Seconds, steal: Seconds },
      { additionalProperties: false, description: 'CPU seconds by mode since boot, summed over all CPUs' },
    ),
    memory: Type.Object(
      { totalBytes: Counter, freeBytes: Counter, availableBytes: Counter },
      { additionalProperties: false },
    ),
    numa: Type.Array(Type.Object({ cell: Counter, totalBytes: Counter, freeBytes: Counter }, { additionalProperties: false })),
  },
  { additionalProperties: false, title: 'NodeStats' },
);
export type NodeStats = Static<typeof NodeStats>;

/** Stats of every domain of a node in one call, like virConnectGetAllDomainStats; each domain is bounded by a deadline. */
export const DomainStatsList = Type.Object({ domains: Type.Array(DomainStats), ...PageResponseFields }, { additionalProperties: false, title: 'DomainStatsList' });
export const DomainStatsListRequest = Type.Object(PageRequestFields, { additionalProperties: false, title: 'DomainStatsListRequest' });
export type DomainStatsList = Static<typeof DomainStatsList>;

/** What an agent publishes periodically on `virt.v1.<node>.stats`. */
export const StatsMessage = Type.Object(
  {
    kind: Type.Literal('node.stats'),
    node: Type.String(),
    collectedAt: Type.String({ format: 'date-time' }),
    host: NodeStats,
    domains: Type.Array(DomainStats),
    part: Type.Optional(Type.Integer({ minimum: 1, description: 'This message is part `part` of `parts` of one sample (same node and collectedAt)' })),
    parts: Type.Optional(Type.Integer({ minimum: 1, description: 'How many messages the sample was split into, each below the bus max_payload' })),
  },
  { additionalProperties: false, title: 'StatsMessage', description: 'One sample, split into parts when its domains do not fit one message' },
);
export type StatsMessage = Static<typeof StatsMessage>;

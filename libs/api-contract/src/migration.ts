import Type, { type Static } from 'typebox';
import { HostCpu } from './capabilities.js';
import { DomainConfig } from './domain.js';
import { Count, DomainId, HostPath, NodeName, ObjectName, Uuid } from './names.js';
import { DomainSnapshot } from './snapshots.js';
import { PermissionClass, type OperationSpec } from './operation-spec.js';
import { Access } from './subjects.js';

/** libvirt-style migration flags: live or paused, offline, persist/undefine, tuning, TLS and storage copy. */
export const MigrationRequest = Type.Object(
  {
    destination: NodeName,
    live: Type.Optional(Type.Boolean({ default: true, description: 'Keep the guest running while RAM is copied (false: pause it first)' })),
    paused: Type.Optional(Type.Boolean({ default: false, description: 'Leave the domain paused on the destination' })),
    offline: Type.Optional(Type.Boolean({ default: false, description: 'Move the definition only; no QEMU is involved' })),
    persistDestination: Type.Optional(Type.Boolean({ default: true, description: 'Keep the definition on the destination' })),
    undefineSource: Type.Optional(Type.Boolean({ default: false, description: 'Remove the definition from the source when done' })),
    maxDowntimeMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000, description: 'QEMU downtime-limit' })),
    bandwidthMiBs: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'QEMU max-bandwidth in MiB/s' })),
    autoConverge: Type.Optional(Type.Boolean({ default: false, description: 'Throttle the vCPUs when RAM does not converge' })),
    postCopy: Type.Optional(Type.Boolean({ default: false, description: 'Enable post-copy; switched to after the first pass' })),
    tls: Type.Optional(Type.Boolean({ default: false, description: 'Encrypt the stream with tls-creds-x509 (needs the agents’ migration certificates)' })),
    copyStorage: Type.Optional(Type.Enum(['none', 'all'], { default: 'none', description: 'none: shared storage; all: copy every writable disk over NBD' })),
    diskPaths: Type.Optional(
      Type.Record(Type.String({ pattern: '^(vd|sd|hd)[a-z]{1,2}$' }), HostPath, { description: 'copyStorage all: destination path per disk target (default: the same path)' }),
    ),
    poolMap: Type.Optional(
      Type.Record(Type.String({ maxLength: 64 }), Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_][A-Za-z0-9_.+-]*$' }), {
        maxProperties: 64,
        description: 'Disks that are pool volumes: destination pool per source pool (default: the pool of the same name); copyStorage all makes each written volume anew there',
      }),
    ),
  },
  { additionalProperties: false, title: 'MigrationRequest' },
);
export type MigrationRequest = Static<typeof MigrationRequest>;

/** Live figures of a running migration (query-migrate and the storage mirror jobs). */
export const MigrationProgress = Type.Object(
  {
    phase: Type.Enum(['checking', 'preparing', 'copying-storage', 'copying-ram', 'post-copy', 'finishing', 'done']),
    ramTransferredBytes: Count,
    ramRemainingBytes: Count,
    ramTotalBytes: Count,
    iteration: Type.Integer({ minimum: 0, description: 'dirty-sync-count: passes over guest RAM' }),
    dirtyPagesRate: Type.Number({ minimum: 0, description: 'pages dirtied per second' }),
    diskProcessedBytes: Count,
    diskTotalBytes: Count,
    downtimeMs: Type.Optional(Type.Number({ minimum: 0 })),
    totalTimeMs: Type.Optional(Type.Number({ minimum: 0 })),
  },
  { additionalProperties: false, title: 'MigrationProgress' },
);
export type MigrationProgress = Static<typeof MigrationProgress>;

/** A one-time permission from the destination for one incoming migration (bound to the domain and the source node). */
export const MigrationTicketSecret = Type.String({ pattern: '^[A-Za-z0-9_-]{43}$', description: 'One-time migration ticket from migration.accept' });

/** `migration.accept` on the destination: a caller allowed on both nodes asks it to take this domain from `source`. */
export const MigrationAcceptRequest = Type.Object({ uuid: Uuid, source: NodeName }, { additionalProperties: false, title: 'MigrationAcceptRequest' });
export type MigrationAcceptRequest = Static<typeof MigrationAcceptRequest>;
export const MigrationTicket = Type.Object(
  { ticket: MigrationTicketSecret, expiresAt: Type.String({ format: 'date-time' }) },
  { additionalProperties: false, title: 'MigrationTicket' },
);
export type MigrationTicket = Static<typeof MigrationTicket>;

export const DomainMigrateRequest = Type.Object(
  {
    id: DomainId,
    migration: MigrationRequest,
    /** From migration.accept on the destination; without it the destination refuses. */
    ticket: Type.Optional(MigrationTicketSecret),
  },
  { additionalProperties: false },
);

/** Bound of the gzip bytes of every file carried inside one prepare, so the message stays below NATS' 1 MiB max_payload. */
export const MIGRATION_CARRIED_MAX_BYTES = 512 * 1024;

/** A small file that travels inside prepare (gzip, then base64): the EFI NVRAM, or a read-only pool volume such as a cloud-init seed. */
export const PeerMigrationFile = Type.Object(
  {
    kind: Type.Enum(['nvram', 'volume']),
    /** volume: where it goes on the destination (the pool mapped by poolMap). */
    pool: Type.Optional(ObjectName),
    volume: Type.Optional(ObjectName),
    gzipBase64: Type.String({ maxLength: Math.ceil(MIGRATION_CARRIED_MAX_BYTES / 3) * 4 }),
  },
  { additionalProperties: false },
);
export type PeerMigrationFile = Static<typeof PeerMigrationFile>;

/** Agent-to-agent messages on `virt.v1.<destination>.peer.migration.*` (never on the public API). */
export const PeerMigrationPrepare = Type.Object(
  {
    migrationId: Uuid,
    source: NodeName,
    config: DomainConfig,
    options: MigrationRequest,
    /** Virtual size in bytes per disk target, for the empty disks a storage copy fills. */
    diskSizes: Type.Record(Type.String(), Count),
    /** The destination's one-time ticket for this migration (check and prepare refuse without it). */
    ticket: Type.Optional(MigrationTicketSecret),
    /** The CPU model the source runs the domain with and the source host's CPU (the destination checks it can give the same). */
    cpu: Type.Optional(Type.Object({ model: Type.String({ maxLength: 128 }), host: HostCpu }, { additionalProperties: false })),
    /** The domain's snapshot metadata, which moves with it (the images hold the snapshots themselves). */
    snapshots: Type.Optional(
      Type.Object({ current: Type.Optional(ObjectName), snapshots: Type.Array(Type.Omit(DomainSnapshot, ['children', 'current'])) }, { additionalProperties: false }),
    ),
    files: Type.Optional(Type.Array(PeerMigrationFile, { maxItems: 16 })),
  },
  { additionalProperties: false },
);
export type PeerMigrationPrepare = Static<typeof PeerMigrationPrepare>;

export const PeerMigrationTarget = Type.Object(
  {
    uri: Type.String({ description: 'QEMU migration URI the source connects to' }),
    nbd: Type.Optional(Type.Object({ host: Type.String(), port: Type.Integer(), exports: Type.Record(Type.String(), Type.String()) }, { additionalProperties: false })),
    libvirtUri: Type.Optional(Type.String({ maxLength: 4096, description: 'libvirt driver: the URI by which the source libvirtd reaches the destination libvirtd (peer-to-peer migration)' })),
  },
  { additionalProperties: false },
);
export type PeerMigrationTarget = Static<typeof PeerMigrationTarget>;

export const PeerMigrationFinish = Type.Object({ migrationId: Uuid, uuid: Uuid, resume: Type.Boolean(), ticket: Type.Optional(MigrationTicketSecret) }, { additionalProperties: false });
export type PeerMigrationFinish = Static<typeof PeerMigrationFinish>;
export const PeerMigrationAbort = Type.Object({ migrationId: Uuid, uuid: Uuid, ticket: Type.Optional(MigrationTicketSecret) }, { additionalProperties: false });
export type PeerMigrationAbort = Static<typeof PeerMigrationAbort>;
export const PeerMigrationVerbs = { check: 'check', prepare: 'prepare', finish: 'finish', abort: 'abort' } as const;
export type PeerMigrationVerb = (typeof PeerMigrationVerbs)[keyof typeof PeerMigrationVerbs];
/** The destination's answer to check: whether the stream is to be encrypted. */
export const PeerMigrationCheck = Type.Object({ tls: Type.Boolean() }, { additionalProperties: false });
export type PeerMigrationCheck = Static<typeof PeerMigrationCheck>;
const PeerMigrationDone = Type.Object({}, { additionalProperties: false });

const peerErrors = ['FORBIDDEN', 'NO_DOMAIN', 'OPERATION_INVALID', 'OPERATION_UNSUPPORTED'] as const;

/** The destination side of a migration, called by the source agent only (subjects `virt.v1.<destination>.peer.migration.*`; no HTTP binding). */
export const PeerMigrationOperations = {
  'migration.check': {
    access: Access.Peer,
    request: PeerMigrationPrepare,
    response: PeerMigrationCheck,
    summary: 'On the destination: whether it can take the domain (ticket, name, compatibility, TLS)',
    permission: PermissionClass.Peer,
    errors: [...peerErrors, 'MIGRATION_INCOMPATIBLE'],
  },
  'migration.prepare': {
    access: Access.Peer,
    request: PeerMigrationPrepare,
    response: PeerMigrationTarget,
    summary: 'On the destination: define the domain and start the incoming process; spends the ticket',
    permission: PermissionClass.Peer,
    errors: [...peerErrors, 'MIGRATION_INCOMPATIBLE'],
  },
  'migration.finish': {
    access: Access.Peer,
    request: PeerMigrationFinish,
    response: PeerMigrationDone,
    summary: 'On the destination: the stream is complete; resume (or keep paused) the migrated domain',
    permission: PermissionClass.Peer,
    errors: peerErrors,
  },
  'migration.abort': {
    access: Access.Peer,
    request: PeerMigrationAbort,
    response: PeerMigrationDone,
    summary: 'On the destination: drop what prepare made (incoming process, definition, copied disks)',
    permission: PermissionClass.Peer,
    errors: peerErrors,
  },
} as const satisfies Record<string, OperationSpec>;

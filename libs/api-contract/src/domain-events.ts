import Type, { type Static } from 'typebox';
import { eventHeaderFields } from './event-header.js';

/** libvirt's virDomainEventID numbering (libvirt-domain.h), the ids clients register callbacks with. */
export const DomainEventIds = {
  LIFECYCLE: 0,
  REBOOT: 1,
  RTC_CHANGE: 2,
  WATCHDOG: 3,
  IO_ERROR: 4,
  GRAPHICS: 5,
  IO_ERROR_REASON: 6,
  CONTROL_ERROR: 7,
  BLOCK_JOB: 8,
  DISK_CHANGE: 9,
  TRAY_CHANGE: 10,
  PMWAKEUP: 11,
  PMSUSPEND: 12,
  BALLOON_CHANGE: 13,
  PMSUSPEND_DISK: 14,
  DEVICE_REMOVED: 15,
  BLOCK_JOB_2: 16,
  TUNABLE: 17,
  AGENT_LIFECYCLE: 18,
  DEVICE_ADDED: 19,
  MIGRATION_ITERATION: 20,
  JOB_COMPLETED: 21,
  DEVICE_REMOVAL_FAILED: 22,
  METADATA_CHANGE: 23,
} as const;
export type DomainEventIdName = keyof typeof DomainEventIds;

/** The events a DomainEvent carries; LIFECYCLE is a LifecycleEvent and GRAPHICS a GraphicsEvent, each on its own subject. */
export const DomainEventNames = [
  'REBOOT',
  'RTC_CHANGE',
  'WATCHDOG',
  'IO_ERROR',
  'IO_ERROR_REASON',
  'BLOCK_JOB',
  'DISK_CHANGE',
  'TRAY_CHANGE',
  'BALLOON_CHANGE',
  'DEVICE_ADDED',
  'DEVICE_REMOVED',
  'DEVICE_REMOVAL_FAILED',
  'TUNABLE',
  'AGENT_LIFECYCLE',
  'MIGRATION_ITERATION',
  'JOB_COMPLETED',
  'METADATA_CHANGE',
] as const satisfies readonly DomainEventIdName[];
export const DomainEventName = Type.Enum([...DomainEventNames], { description: "libvirt's event id name (virDomainEventID without VIR_DOMAIN_EVENT_ID_)" });
export type DomainEventName = Static<typeof DomainEventName>;

const Scalar = Type.Union([Type.String({ maxLength: 1024 }), Type.Number(), Type.Boolean()]);

/** What each event says; only the fields its event fills are present (libvirt's callback arguments). */
export const DomainEventDetails = Type.Object(
  {
    offset: Type.Optional(Type.Integer({ description: 'RTC_CHANGE: guest RTC minus host UTC, seconds' })),
    action: Type.Optional(Type.String({ maxLength: 32, description: 'WATCHDOG: reset, poweroff, shutdown, pause, debug, inject-nmi, none; IO_ERROR*: pause, report, ignore, stop' })),
    device: Type.Optional(Type.String({ maxLength: 256, description: 'Disk target (vda, hdc…) or device alias the event is about' })),
    path: Type.Optional(Type.String({ maxLength: 4096, description: 'IO_ERROR*: source file of the disk; DEVICE_*: QOM path' })),
    reason: Type.Optional(Type.String({ maxLength: 64, description: 'IO_ERROR_REASON: enospc, eio…; TRAY_CHANGE: OPEN or CLOSE; AGENT_LIFECYCLE: why the state changed' })),
    jobType: Type.Optional(Type.String({ maxLength: 32, description: 'BLOCK_JOB: PULL, COPY, COMMIT, ACTIVE_COMMIT (virDomainBlockJobType)' })),
    status: Type.Optional(Type.String({ maxLength: 32, description: 'BLOCK_JOB: COMPLETED, FAILED, CANCELED, READY (virConnectDomainEventBlockJobStatus)' })),
    oldSource: Type.Optional(Type.String({ maxLength: 4096, description: 'DISK_CHANGE: the media before' })),
    newSource: Type.Optional(Type.String({ maxLength: 4096, description: 'DISK_CHANGE: the media after' })),
    actualKiB: Type.Optional(Type.Integer({ minimum: 0, description: 'BALLOON_CHANGE: memory the guest has now, KiB' })),
    state: Type.Optional(Type.Enum(['CONNECTED', 'DISCONNECTED'], { description: 'AGENT_LIFECYCLE: the guest agent channel' })),
    iteration: Type.Optional(Type.Integer({ minimum: 0, description: 'MIGRATION_ITERATION: memory pass number' })),
    metadata: Type.Optional(Type.String({ maxLength: 64, description: 'METADATA_CHANGE: which metadata changed (labels, description, title)' })),
    params: Type.Optional(
      Type.Record(Type.String({ maxLength: 128 }), Scalar, { description: 'TUNABLE: the changed tunables; JOB_COMPLETED: the job statistics', maxProperties: 64 }),
    ),
  },
  { additionalProperties: false, title: 'DomainEventDetails' },
);
export type DomainEventDetails = Static<typeof DomainEventDetails>;

/** A domain event beyond the lifecycle, numbered in the node's sequence and kept in the stream like lifecycle events. */
export const DomainEvent = Type.Object(
  {
    ...eventHeaderFields('domain.event', 'Per-node sequence number, shared with lifecycle events'),
    name: Type.String({ description: 'Domain name' }),
    event: DomainEventName,
    eventId: Type.Integer({ minimum: 0, description: "libvirt's virDomainEventID number of `event`" }),
    details: DomainEventDetails,
  },
  { additionalProperties: false, title: 'DomainEvent' },
);
export type DomainEvent = Static<typeof DomainEvent>;

import Type, { type Static } from 'typebox';
import { eventHeaderFields } from './event-header.js';
import { DomainState, StateReason } from './domain.js';
import { Labels } from './labels.js';

/** libvirt's virDomainEventType with the detail codes each one carries. */
export const LifecycleDetails = {
  DEFINED: ['ADDED', 'UPDATED', 'RENAMED', 'FROM_SNAPSHOT'],
  UNDEFINED: ['REMOVED', 'RENAMED'],
  STARTED: ['BOOTED', 'MIGRATED', 'RESTORED', 'FROM_SNAPSHOT', 'WAKEUP'],
  SUSPENDED: ['PAUSED', 'MIGRATED', 'IOERROR', 'WATCHDOG', 'RESTORED', 'FROM_SNAPSHOT', 'API_ERROR', 'POSTCOPY', 'POSTCOPY_FAILED'],
  RESUMED: ['UNPAUSED', 'MIGRATED', 'FROM_SNAPSHOT', 'POSTCOPY', 'POSTCOPY_FAILED'],
  STOPPED: ['SHUTDOWN', 'DESTROYED', 'CRASHED', 'MIGRATED', 'SAVED', 'FAILED', 'FROM_SNAPSHOT'],
  SHUTDOWN: ['FINISHED', 'GUEST', 'HOST'],
  PMSUSPENDED: ['MEMORY', 'DISK'],
  CRASHED: ['PANICKED', 'CRASHLOADED'],
} as const;

export type LifecycleType = keyof typeof LifecycleDetails;
export const LifecycleTypes = Object.keys(LifecycleDetails) as LifecycleType[];
export const LifecycleType = Type.Enum(LifecycleTypes, { description: "libvirt's lifecycle event type" });
export const LifecycleDetail = Type.Enum([...new Set(Object.values(LifecycleDetails).flat())], {
  description: 'Detail code for the event type (see LifecycleDetails)',
});
export type LifecycleDetail = Static<typeof LifecycleDetail>;

export const LifecycleEvent = Type.Object(
  {
    ...eventHeaderFields('domain.lifecycle', 'Per-node sequence number, gap-free across agent restarts'),
    name: Type.String(),
    type: LifecycleType,
    detail: LifecycleDetail,
    state: DomainState,
    reason: StateReason,
    labels: Type.Optional({ ...Labels, description: "The domain's labels when the event was recorded (absent when it has none)" }),
  },
  { additionalProperties: false, title: 'LifecycleEvent' },
);
export type LifecycleEvent = Static<typeof LifecycleEvent>;

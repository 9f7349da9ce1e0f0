import type { DomainState, StateReason } from './domain.js';
import type { LifecycleDetail, LifecycleType } from './events.js';

export interface LifecycleChange {
  type: LifecycleType;
  detail: LifecycleDetail;
}

const startedDetail: Partial<Record<StateReason, LifecycleDetail>> = {
  migrated: 'MIGRATED',
  // an incoming migration's process starts paused (libvirt: STARTED/MIGRATED at prepare)
  migration: 'MIGRATED',
  restored: 'RESTORED',
  from_snapshot: 'FROM_SNAPSHOT',
  wakeup: 'WAKEUP',
};
const resumedDetail: Partial<Record<StateReason, LifecycleDetail>> = {
  migrated: 'MIGRATED',
  from_snapshot: 'FROM_SNAPSHOT',
  postcopy: 'POSTCOPY',
};
const suspendedDetail: Partial<Record<StateReason, LifecycleDetail>> = {
  migration: 'MIGRATED',
  ioerror: 'IOERROR',
  watchdog: 'WATCHDOG',
  from_snapshot: 'FROM_SNAPSHOT',
  postcopy: 'POSTCOPY',
  postcopy_failed: 'POSTCOPY_FAILED',
};
const stoppedDetail: Partial<Record<StateReason, LifecycleDetail>> = {
  shutdown: 'SHUTDOWN',
  destroyed: 'DESTROYED',
  crashed: 'CRASHED',
  migrated: 'MIGRATED',
  saved: 'SAVED',
  failed: 'FAILED',
  daemon: 'FAILED',
  from_snapshot: 'FROM_SNAPSHOT',
};

/**
 * Whether a domain in this state is active (libvirt's virDomainObjIsActive, which asks for a live process): running,
 * blocked, paused, shutdown (on its way down) and pmsuspended are; shutoff and nostate are not. `crashed` counts as
 * inactive, as virtbus always treated it (crashed → running is STARTED, start is allowed from it), although libvirt
 * calls a crashed domain whose process is kept (on_crash=preserve) active: a driver that keeps one checks its process.
 */
export function isActive(state: DomainState): boolean {
  return state !== 'shutoff' && state !== 'crashed' && state !== 'nostate';
}

/** The libvirt lifecycle events a state transition produces, in order (none when nothing changed). */
export function lifecycleChanges(previous: DomainState, next: DomainState, reason: StateReason): LifecycleChange[] {
  if (previous === next) return [];
  switch (next) {
    case 'running':
    case 'blocked':
      if (previous === 'paused' || previous === 'pmsuspended') return [{ type: 'RESUMED', detail: resumedDetail[reason] ?? 'UNPAUSED' }];
      if (!isActive(previous)) return [{ type: 'STARTED', detail: startedDetail[reason] ?? 'BOOTED' }];
      return [];
    case 'paused': {
      const suspended: LifecycleChange = { type: 'SUSPENDED', detail: suspendedDetail[reason] ?? 'PAUSED' };
      return !isActive(previous) ? [{ type: 'STARTED', detail: startedDetail[reason] ?? 'BOOTED' }, suspended] : [suspended];
    }
    case 'shutdown':
      return [{ type: 'SHUTDOWN', detail: 'FINISHED' }];
    case 'shutoff':
      return [{ type: 'STOPPED', detail: stoppedDetail[reason] ?? 'SHUTDOWN' }];
    case 'crashed':
      return [{ type: 'CRASHED', detail: 'PANICKED' }];
    case 'pmsuspended':
      return [{ type: 'PMSUSPENDED', detail: 'MEMORY' }];
    case 'nostate':
      return [];
  }
}

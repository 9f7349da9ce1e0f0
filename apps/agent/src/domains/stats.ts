import { VirtError, isActive, type DomainStats } from '@virtbus/api-contract';
import type { DomainJobs } from './jobs.js';
import type { StoredDomain } from './store.js';

export const STATS_DEADLINE_MS = 2000;
const TIMED_OUT = Symbol('timed out');

/**
 * Domain stats from the drivers, never under the job lock: one outstanding call per domain, shared by scrapes, bulk
 * and single stats (a stuck QMP does not pile up calls), and the last good values for a domain that misses a deadline.
 */
export class DomainStatsCache {
  private readonly calls = new Map<string, Promise<DomainStats>>();
  private readonly last = new Map<string, DomainStats>();

  constructor(
    private readonly jobs: DomainJobs,
    /** Bound for one domain's stats in single and bulk stats calls. */
    private readonly deadlineMs = STATS_DEADLINE_MS,
  ) {}

  /** One domain's stats; an inactive domain has only its state. */
  async get(id: string): Promise<DomainStats> {
    const stored = this.jobs.resolve(id);
    const driver = this.jobs.driverFor(stored.config);
    if (!isActive(stored.state)) return stateOnly(stored);
    if (!driver.stats) throw new VirtError('OPERATION_UNSUPPORTED', `the ${driver.name} driver has no stats`);
    return this.driverStats(stored.config.uuid, this.deadlineMs);
  }

  /** The driver's stats of an active domain; joins a call still outstanding. */
  driverStats(id: string, deadlineMs = STATS_DEADLINE_MS): Promise<DomainStats> {
    const stored = this.jobs.resolve(id);
    const uuid = stored.config.uuid;
    let call = this.calls.get(uuid);
    if (!call) {
      const driver = this.jobs.driverFor(stored.config);
      const stats = driver.stats;
      if (!stats) return Promise.reject(new VirtError('OPERATION_UNSUPPORTED', `the ${driver.name} driver has no stats`));
      call = this.jobs
        .driverCall(driver, 'stats', stored, () => stats.domainStats(stored, { deadlineMs }))
        .then((result) => {
          this.last.set(uuid, result);
          return result;
        })
        .finally(() => this.calls.delete(uuid));
      call.catch(() => undefined);
      this.calls.set(uuid, call);
    }
    return call;
  }

  /**
   * Stats of every domain at once (virConnectGetAllDomainStats): all asked in parallel, none waited for longer than
   * deadlineMs; a late one is reported with its last good values (or just its state) and `timedOut: true`.
   */
  async all(deadlineMs = this.deadlineMs): Promise<DomainStats[]> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<typeof TIMED_OUT>((resolve) => (timer = setTimeout(() => resolve(TIMED_OUT), deadlineMs)));
    const late = (stored: StoredDomain, base: DomainStats): DomainStats => ({ ...(this.last.get(stored.config.uuid) ?? base), state: stored.state, reason: stored.reason, timedOut: true });
    try {
      return await Promise.all(
        [...this.jobs.all()].map(async (stored): Promise<DomainStats> => {
          const base = stateOnly(stored);
          if (!isActive(stored.state)) {
            this.last.delete(stored.config.uuid);
            return base;
          }
          try {
            const result = await Promise.race([this.driverStats(stored.config.uuid, deadlineMs + 500), deadline]);
            return result === TIMED_OUT ? late(stored, base) : result;
          } catch (error) {
            return VirtError.is(error, 'OPERATION_TIMEOUT') ? late(stored, base) : base;
          }
        }),
      );
    } finally {
      clearTimeout(timer);
    }
  }
}

function stateOnly(stored: StoredDomain): DomainStats {
  return { uuid: stored.config.uuid, name: stored.config.name, state: stored.state, reason: stored.reason, collectedAt: new Date().toISOString() };
}

import type { Domain, DomainConfig, DomainEventDetails, DomainEventName, LiveDisk } from '@virtbus/api-contract';
import type { DomainRecord, HypervisorDriver } from '@virtbus/drivers';
import type { StoredDomain } from './store.js';

/** What the device and stats parts of the domain manager use of its core (definitions, state, the job lock). */
export interface DomainJobs {
  /** The one way into a domain job: resolves `id`, takes the domain's job lock, writes a pending change first, then runs `work` on the record under the lock. */
  inJob<T>(id: string, work: (stored: StoredDomain, driver: HypervisorDriver) => Promise<T>): Promise<T>;
  /** One driver call in a driver span; errors are counted. */
  driverCall<T>(driver: HypervisorDriver, operation: string, record: DomainRecord, fn: () => Promise<T>): Promise<T>;
  /** Persists a device change: the definition (with a DEFINED/UPDATED event) and/or the running domain's disks. */
  saveDevices(uuid: string, config: DomainConfig, liveDisks: LiveDisk[] | undefined, configChanged: boolean): Promise<Domain>;
  /** Records a domain event beyond the lifecycle (DEVICE_ADDED…). */
  domainEvent(uuid: string, event: DomainEventName, details?: DomainEventDetails): Promise<void>;
  resolve(id: string): StoredDomain;
  driverFor(config: DomainConfig): HypervisorDriver;
  /** Every domain of the node. */
  all(): Iterable<StoredDomain>;
}

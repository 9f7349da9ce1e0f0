import {
  DEFAULT_STATE_TIMEOUT_S,
  VirtError,
  isActive,
  isUuid,
  lifecycleChanges,
  matchesLabelSelector,
  parseLabelSelector,
  takePage,
  type Domain,
  type DomainConfig,
  type DomainXml,
  type DomainImport,
  type DomainImportResult,
  DOMAIN_IMPORT_MAX,
  type DomainEventDetails,
  type DomainEventName,
  type DomainTaint,
  type DomainList,
  type DomainListRequest,
  type DomainPut,
  type DomainsPost,
  type DomainStatePut,
  type ExecRequest,
  type ExecResult,
  type LifecycleChange,
  type LiveDisk,
} from '@virtbus/api-contract';
import { diskTargets, type DomainRecord, type DomainRuntime, type DriverContext, type HypervisorDriver, type NetworkResolver, type RunState, type SaveRestoreCapability, type UndefineOptions } from '@virtbus/drivers';
import { withSpan, type DomainListing } from '@virtbus/monitoring';
import type { Logger } from 'pino';
import type { EventPublisher } from '../events/publisher.js';
import { applyPut, configFromPost, publicConfig } from './defaults.js';
import { JobLocks } from './job-lock.js';
import { DomainTable } from './table.js';
import type { DomainStore, StoredDomain } from './store.js';
import { withTargets } from './disk-ops.js';
import { resolveConfig, volumesOf, type VolumeResolver } from './volumes.js';
import { DomainDevices, liveDisksOf } from './devices.js';
import { DomainResources } from './resources.js';
import { DomainBlockJobs } from './block-jobs.js';
import type { DomainJobs } from './jobs.js';
import { ManagedSaveImages } from './managed-save.js';
import { DomainStatsCache } from './stats.js';
import { StateDir } from '../state-dir.js';

// A change that happened but could not be recorded is written again after 0.1 s, doubling to 5 s.
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5000;
const ADOPT_PARALLEL = 64;

export interface DomainManagerOptions {
  node: string;
  stateDir: string;
  drivers: readonly HypervisorDriver[];
  store: DomainStore;
  events: EventPublisher;
  logger: Logger;
  /** Bound for one domain's stats in single and bulk stats calls (default 2000 ms). */
  statsDeadlineMs?: number;
  /** Resolves disks and root filesystems that name pool volumes (the storage manager). */
  volumes?: VolumeResolver;
  /** Virtual networks that `network` NICs resolve to. */
  networks?: NetworkResolver;
  /** Told about every error a driver call returns (metrics). */
  onDriverError?: (driver: string, operation: string, error: unknown) => void;
}

/** What a job under the domain lock changed: a new definition, and the states it went through (last = current). */
export interface DomainJobOutcome<T> {
  result: T;
  config?: DomainConfig;
  states?: RunState[];
}

/** A failed state write as a clear error: STORAGE_FULL for a full disk or quota, with the cause. */
function stateWriteError(name: string, error: unknown): VirtError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const full = code === 'ENOSPC' || code === 'EDQUOT';
  return new VirtError(full ? 'STORAGE_FULL' : 'OPERATION_FAILED', `the state of domain ${name} could not be written: ${(error as Error)?.message ?? String(error)}`, { cause: error });
}

/**
 * Owns every domain of the node: definitions, state, the per-domain job lock, and the lifecycle
 * events that state changes produce; disk changes (`devices`) and stats (`stats`) are parts of their own
 * that enter a domain only through `inJob`. Drivers only run things.
 */
export class DomainManager {
  private readonly domains = new DomainTable();
  private readonly locks = new JobLocks();
  private readonly writes = new Map<string, Promise<void>>();
  /** Each domain's state writes still in flight (file and events of its latest apply): a later apply reporting that state waits for them. */
  private readonly applying = new Map<string, Promise<unknown>>();
  private readonly driversByType = new Map<string, HypervisorDriver>();
  readonly devices: DomainDevices;
  readonly resources: DomainResources;
  readonly blockJobs: DomainBlockJobs;
  readonly stats: DomainStatsCache;
  readonly managedSaves: ManagedSaveImages;
  /** Domains whose last change happened (the guest stopped, paused…) but is not yet on disk: retried until written. */
  private readonly pendingWrites = new Map<string, { delayMs: number; timer?: NodeJS.Timeout; updated?: boolean }>();
  private closing = false;
  /** The id the next domain to start gets (virsh's domain id; never reused while the agent's state dir lives). */
  private nextId = 1;

  constructor(private readonly options: DomainManagerOptions) {
    for (const driver of options.drivers) for (const type of driver.domainTypes) this.driversByType.set(type, driver);
    const jobs: DomainJobs = {
      inJob: (id, work) => this.inJob(id, work),
      driverCall: (driver, operation, record, fn) => this.driverCall(driver, operation, record, fn),
      saveDevices: (uuid, config, liveDisks, configChanged) => this.saveDevices(uuid, config, liveDisks, configChanged),
      domainEvent: (uuid, event, details) => this.emitDomainEvent(uuid, event, details),
      resolve: (id) => this.resolve(id),
      driverFor: (config) => this.driverFor(config),
      all: () => this.domains.values(),
    };
    this.devices = new DomainDevices(jobs, options.volumes);
    this.resources = new DomainResources(jobs);
    this.blockJobs = new DomainBlockJobs(jobs);
    this.stats = new DomainStatsCache(jobs, options.statsDeadlineMs);
    this.managedSaves = new ManagedSaveImages(options.stateDir);
  }

  /** Domains whose last change is not yet on disk (shown as `persistPending`, retried). */
  get pendingWriteCount(): number {
    return this.pendingWrites.size;
  }

  get drivers(): readonly HypervisorDriver[] {
    return this.options.drivers;
  }

  async init(): Promise<void> {
    for (const driver of this.options.drivers) await driver.init(this.contextFor(driver));
    this.options.events.setBeforeSnapshot(() => this.options.store.syncUnsynced());
    const recorded = this.options.events.recordedDomains();
    const sources = { definitions: this.options.events.takeDefinitions(), logSeq: this.options.events.lastSeq, ...(recorded ? { recorded } : {}) };
    const loaded = (await this.options.store.loadAll(sources)).map((stored) => {
      // A state change is durable in the event log; the domain file is only rewritten for what the log does not hold.
      const last = recorded?.get(stored.config.uuid);
      if (!(last?.stateChangedAt && last.reason && last.stateChangedAt > stored.stateChangedAt)) return stored;
      const { id: _fileId, ...rest } = stored;
      // a stop recorded only in the log: the file may still hold the runtime facts of the run that ended
      if (last.runtimeCleared) {
        delete rest.runtime;
        delete rest.liveDisks;
        delete rest.tainted;
      }
      return { ...rest, state: last.state, reason: last.reason, stateChangedAt: last.stateChangedAt, ...(last.id !== undefined ? { id: last.id } : {}) };
    });
    this.domains.load(loaded);
    for (const stored of loaded) if (stored.id !== undefined && stored.id >= this.nextId) this.nextId = stored.id + 1;
    await this.recoverEvents();
    // ADOPT_PARALLEL at a time: 10,000 adopts in flight at once keep 10,000 promise chains alive through every GC
    const uuids = [...this.domains.orderedUuids()];
    let next = 0;
    const adoptAll = async () => {
      while (next < uuids.length) await this.adopt(uuids[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(ADOPT_PARALLEL, uuids.length) }, adoptAll));
    for (const stored of this.domains.values()) {
      if (stored.config.autostart && !isActive(stored.state)) {
        await this.changeState(stored.config.uuid, { action: 'start' }).catch((error: unknown) =>
          this.options.logger.error({ err: error, domain: stored.config.name }, 'autostart failed'),
        );
      }
    }
  }

  /**
   * A domain is saved before its event reaches the outbox: an agent killed in between restarts with changes that never
   * became events. They are recorded now, from the state the last recorded event left each domain in.
   */
  private async recoverEvents(): Promise<void> {
    const recorded = this.options.events.recordedDomains();
    if (!recorded) {
      const current = new Map([...this.domains.values()].map((stored) => [stored.config.uuid, { name: stored.config.name, state: stored.state }]));
      await this.options.events.seedRecordedDomains(current);
      return;
    }
    const lost: Promise<void>[] = [];
    for (const stored of this.domains.values()) {
      const last = recorded.get(stored.config.uuid);
      const defined: LifecycleChange = { type: 'DEFINED', detail: 'ADDED' };
      const changes = last ? lifecycleChanges(last.state, stored.state, stored.reason) : [defined, ...lifecycleChanges('shutoff', stored.state, stored.reason)];
      if (changes.length === 0) continue;
      this.options.logger.warn({ domain: stored.config.name, changes }, 'recording lifecycle events lost by an unclean stop');
      // Numbered in order here; the log writes them together.
      for (const change of changes) lost.push(this.publish(stored, change));
    }
    for (const [uuid, last] of [...recorded]) {
      if (this.domains.has(uuid)) continue;
      this.options.logger.warn({ domain: last.name }, 'recording an undefine lost by an unclean stop');
      lost.push(this.options.events.emit({ uuid, name: last.name }, { type: 'UNDEFINED', detail: 'REMOVED' }, 'shutoff', 'unknown').then(() => undefined));
    }
    await Promise.all(lost);
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const pending of this.pendingWrites.values()) clearTimeout(pending.timer);
    await Promise.all(this.options.drivers.map((driver) => driver.close()));
    await Promise.all(this.writes.values());
  }

  /** At a clean stop (after close and the event log's close): every record in one file, unless a change is still unwritten. */
  async writeCleanSnapshot(): Promise<void> {
    if (this.pendingWrites.size > 0 || this.writes.size > 0) return;
    await this.options.store.writeSnapshot(this.domains.values(), this.options.events.lastSeq);
  }

  list(): Domain[] {
    return [...this.domains.values()].map((stored) => this.view(stored)).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** How many domains there are and how many run (the node record's heartbeat), without building a view of each. */
  counts(): { total: number; running: number } {
    let running = 0;
    for (const stored of this.domains.values()) if (stored.state === 'running') running++;
    return { total: this.domains.size, running };
  }

  /** Every domain's uuid. */
  uuids(): string[] {
    return [...this.domains.orderedUuids()];
  }

  /** One page of domain.list: the matching domains in (name, uuid) code-unit order, at most `maxBytes` of them in JSON. */
  listPage(query: DomainListRequest, maxBytes: number): DomainList {
    const selector = parseLabelSelector(query.labelSelector ?? '');
    const filtered = query.state !== undefined || query.driver !== undefined || query.prefix !== undefined || selector.length > 0;
    const ordered = this.domains.orderedUuids();
    const matching = filtered
      ? ordered.filter((uuid) => {
          const { config, state } = this.domains.get(uuid)!;
          return (
            (query.state === undefined || state === query.state) &&
            (query.driver === undefined || config.driver === query.driver) &&
            (query.prefix === undefined || config.name.startsWith(query.prefix)) &&
            matchesLabelSelector(config.labels, selector)
          );
        })
      : ordered;
    const page = takePage(matching, { keyOf: (uuid) => [this.domains.get(uuid)!.config.name, uuid], view: (uuid) => this.view(this.domains.get(uuid)!), query, maxBytes });
    return { domains: page.items, ...(page.continue ? { continue: page.continue } : {}), remaining: page.remaining };
  }

  get(id: string): Domain {
    return this.view(this.resolve(id));
  }

  /** The record a driver sees (for capability calls outside the manager). */
  record(id: string): DomainRecord {
    return this.resolve(id);
  }

  driverFor(config: DomainConfig): HypervisorDriver {
    return this.driverForType(config.driver);
  }

  driverForType(type: DomainConfig['driver']): HypervisorDriver {
    const driver = this.driversByType.get(type);
    if (!driver) throw new VirtError('OPERATION_UNSUPPORTED', `no ${type} driver on node ${this.options.node}`);
    return driver;
  }

  async define(post: DomainsPost, transient = false): Promise<Domain> {
    const config = configFromPost(post);
    this.driverFor(config).validate(config);
    return this.locks.run(`name:${config.name}`, async () => {
      if (this.domains.findByName(config.name)) throw new VirtError('DOMAIN_EXISTS', `domain ${config.name} already exists`);
      if (this.domains.has(config.uuid)) throw new VirtError('DOMAIN_EXISTS', `domain with uuid ${config.uuid} already exists`);
      const stored: StoredDomain = { config, state: 'shutoff', reason: 'unknown', stateChangedAt: new Date().toISOString(), ...(transient ? { transient: true as const } : {}) };
      await this.addDefinition(stored);
      return this.view(stored);
    });
  }

  /** Defines a domain from a complete config that keeps its uuid (a migration's destination). */
  async defineConfig(config: DomainConfig): Promise<Domain> {
    this.driverFor(config).validate(config);
    return this.locks.run(`name:${config.name}`, async () => {
      if (this.domains.findByName(config.name) || this.domains.has(config.uuid)) throw new VirtError('DOMAIN_EXISTS', `domain ${config.name} already exists on node ${this.options.node}`);
      const stored: StoredDomain = { config, state: 'shutoff', reason: 'unknown', stateChangedAt: new Date().toISOString() };
      await this.addDefinition(stored);
      return this.view(stored);
    });
  }

  /**
   * A multi-step job (migration) under the domain's job lock: `work` reports each state change it causes through
   * `report`, which persists it and publishes its lifecycle events at once.
   */
  async runJob<T>(id: string, operation: string, work: (record: () => DomainRecord, driver: HypervisorDriver, report: (change: RunState) => Promise<void>) => Promise<T>): Promise<T> {
    return this.inJob(id, (stored, driver) => {
      const uuid = stored.config.uuid;
      return this.driverCall(driver, operation, stored, () => work(() => this.resolve(uuid), driver, (change) => this.apply(uuid, change)));
    });
  }

  /** The one way into a domain job: `work` runs under the domain's job lock, after a pending write of it succeeded, on its record as it is then. */
  private inJob<T>(id: string, work: (stored: StoredDomain, driver: HypervisorDriver) => Promise<T>): Promise<T> {
    const uuid = this.resolve(id).config.uuid;
    return this.locks.run(uuid, async () => {
      await this.requireRecorded(uuid);
      const stored = this.resolve(uuid);
      return work(stored, this.driverFor(stored.config));
    });
  }

  async update(id: string, put: DomainPut): Promise<Domain> {
    return this.inJob(id, async (stored) => {
      const uuid = stored.config.uuid;
      const config = applyPut(stored.config, put);
      const driver = this.driverFor(config);
      driver.validate(config);
      // like libvirt's update-device on <graphics passwd>: a running VNC server takes the new password at once
      const password = config.graphics?.password;
      if (isActive(stored.state) && password && password !== stored.config.graphics?.password) await driver.graphics?.setPassword(stored, password);
      const next = { ...stored, config };
      try {
        await this.options.store.save(next);
      } catch (error) {
        throw stateWriteError(config.name, error);
      }
      this.domains.set(uuid, next);
      try {
        await this.publish(next, { type: 'DEFINED', detail: 'UPDATED' });
      } catch (error) {
        // the new definition is on disk: its event is retried rather than lost
        this.markPending(uuid, true);
        throw stateWriteError(config.name, error);
      }
      // labels are virtbus's domain metadata (libvirt's virDomainSetMetadata)
      if (JSON.stringify(stored.config.labels ?? {}) !== JSON.stringify(config.labels ?? {})) await this.emitDomainEvent(uuid, 'METADATA_CHANGE', { metadata: 'labels' });
      return this.view(next);
    });
  }

  /** libvirt's create: a transient domain, defined and started in one call, gone once it shuts off. */
  async create(post: DomainsPost, paused: boolean): Promise<Domain> {
    const defined = await this.define(post, true);
    try {
      return await this.changeState(defined.uuid, { action: 'start', ...(paused ? { paused } : {}) });
    } catch (error) {
      await this.undefine(defined.uuid).catch((undo: unknown) => this.options.logger.error({ err: undo, domain: defined.name }, 'transient domain that failed to start not removed'));
      throw error;
    }
  }

  async undefine(id: string, options: UndefineOptions = {}): Promise<Domain> {
    return this.inJob(id, (stored, driver) => this.remove(stored, driver, options));
  }

  /** A transient domain that stopped goes away (under its job lock, after the stop's own job). */
  private forgetTransient(uuid: string): void {
    this.locks
      .run(uuid, async () => {
        const stored = this.domains.get(uuid);
        if (stored?.transient && !isActive(stored.state)) await this.remove(stored, this.driverFor(stored.config), {});
      })
      .catch((error: unknown) => this.options.logger.error({ err: error, uuid }, 'stopped transient domain not removed'));
  }

  private async remove(stored: StoredDomain, driver: HypervisorDriver, options: UndefineOptions): Promise<Domain> {
    const uuid = stored.config.uuid;
    if (isActive(stored.state)) {
      throw new VirtError('OPERATION_INVALID', `domain ${stored.config.name} is ${stored.state}: destroy it before undefining`);
    }
    await driver.undefine(stored, options);
    await this.writes.get(uuid);
    await this.options.store.remove(uuid);
    this.domains.delete(uuid);
    try {
      await this.publish(stored, { type: 'UNDEFINED', detail: 'REMOVED' });
    } catch (error) {
      // the file is gone, so a restart records the removal too; until then it is retried
      this.markPending(uuid);
      throw stateWriteError(stored.config.name, error);
    }
    return this.view(stored);
  }

  async changeState(id: string, change: DomainStatePut): Promise<Domain> {
    return this.inJob(id, async (stored, driver) => {
      const uuid = stored.config.uuid;
      const timeoutMs = (change.timeout ?? DEFAULT_STATE_TIMEOUT_S) * 1000;
      const result = await this.driverCall(driver, change.action, stored, () => this.runAction(driver, stored, change, timeoutMs));
      const started = change.action === 'start' && isActive(result.state);
      if (started) this.domains.set(uuid, { ...this.resolve(uuid), liveDisks: withTargets(stored.config.disks) });
      try {
        await this.apply(uuid, result);
      } catch (error) {
        // a start whose state cannot be written would run unrecorded (and come back shut off after a crash): undo it
        if (started) await this.undoStart(driver, stored, result);
        throw error;
      }
      return this.view(this.resolve(uuid));
    });
  }

  private async runAction(driver: HypervisorDriver, stored: StoredDomain, change: DomainStatePut, timeoutMs: number): Promise<RunState> {
    switch (change.action) {
      case 'start': {
        if (isActive(stored.state)) throw new VirtError('OPERATION_INVALID', `domain ${stored.config.name} is already ${stored.state}`);
        const resolved = await this.resolvedRecord(stored);
        driver.validate(resolved.config);
        const paused = change.paused ?? false;
        // a plain start of a domain with a managed save image resumes from it (libvirt's rule)
        if (driver.saveRestore && (await this.managedSaves.exists(stored.config.uuid))) return this.startFromManagedSave(driver.saveRestore, resolved, paused);
        return driver.start(resolved, { paused });
      }
      case 'shutdown':
        try {
          return await driver.shutdown(stored, { timeoutMs });
        } catch (error) {
          if (!change.force || !VirtError.is(error, 'OPERATION_TIMEOUT')) throw error;
          this.options.logger.warn({ domain: stored.config.name }, 'shutdown timed out; destroying as asked');
          return driver.destroy(this.resolve(stored.config.uuid));
        }
      case 'destroy':
        return driver.destroy(stored);
      case 'reboot':
        return driver.reboot(stored, { timeoutMs });
      case 'reset':
        // A container reset starts it again from its config: it needs the resolved paths too.
        return driver.reset(await this.resolvedRecord(stored).catch(() => stored));
      case 'suspend':
        return driver.suspend(stored);
      case 'resume':
        return driver.resume(stored);
    }
  }

  /** Persists a device change: the definition (with a DEFINED/UPDATED event) and/or the running domain's disks. */
  private async saveDevices(uuid: string, config: DomainConfig, liveDisks: LiveDisk[] | undefined, configChanged: boolean): Promise<Domain> {
    const next: StoredDomain = { ...this.resolve(uuid), config };
    if (liveDisks) next.liveDisks = liveDisks;
    this.domains.set(uuid, next);
    try {
      await this.persist(next);
      if (configChanged) await this.publish(next, { type: 'DEFINED', detail: 'UPDATED' });
    } catch (error) {
      // the device is plugged (or unplugged) already: the record follows once it can be written
      this.markPending(uuid, configChanged);
      throw stateWriteError(config.name, error);
    }
    return this.view(next);
  }

  /** The record with every pool volume replaced by its path, as drivers need it to run the domain. */
  async resolvedRecord(record: DomainRecord): Promise<DomainRecord> {
    const config = await resolveConfig(record.config, this.options.volumes);
    return config === record.config ? record : { ...record, config };
  }

  /** Names of the domains whose definition uses a pool volume (a volume in use cannot be deleted). */
  domainsUsingVolume(pool: string, volume: string): string[] {
    return [...this.domains.values()]
      .filter((stored) => {
        const live = (stored.liveDisks ?? []).flatMap((disk) => (disk.source && 'pool' in disk.source ? [disk.source] : []));
        return [...volumesOf(stored.config), ...live].some((ref) => ref.pool === pool && ref.volume === volume);
      })
      .map((stored) => stored.config.name)
      .sort();
  }

  /**
   * Runs `work` under the domain's job lock (snapshots, save/restore): a new config is persisted first, then each
   * returned state is applied in order, so every transition produces its lifecycle events.
   */
  async job<T>(id: string, operation: string, work: (record: DomainRecord, driver: HypervisorDriver) => Promise<DomainJobOutcome<T>>): Promise<T> {
    return this.inJob(id, async (stored, driver) => {
      const uuid = stored.config.uuid;
      const record = await this.resolvedRecord(stored);
      const outcome = await this.driverCall(driver, operation, stored, () => work(record, driver));
      // the work is done (a reverted or saved guest): every state is applied even when a write fails, which marks it pending
      let failure: unknown;
      if (outcome.config) {
        const next: StoredDomain = { ...this.resolve(uuid), config: outcome.config };
        this.domains.set(uuid, next);
        await this.persist(next).catch((error: unknown) => {
          this.markPending(uuid);
          failure ??= stateWriteError(next.config.name, error);
        });
      }
      for (const state of outcome.states ?? []) await this.apply(uuid, state).catch((error: unknown) => (failure ??= error));
      if (failure !== undefined) throw failure;
      return outcome.result;
    });
  }

  /** Resumes a domain from its managed save image, which is then removed (it is consumed like libvirt's). */
  private async startFromManagedSave(saveRestore: SaveRestoreCapability, record: DomainRecord, paused: boolean): Promise<RunState> {
    const run = await saveRestore.restore(record, this.managedSaves.path(record.config.uuid), { paused });
    await this.managedSaves.remove(record.config.uuid);
    this.options.logger.info({ domain: record.config.name }, 'started from the managed save image');
    return run;
  }

  /** One driver call in a driver span; errors are counted. */
  async driverCall<T>(driver: HypervisorDriver, operation: string, stored: DomainRecord, fn: () => Promise<T>): Promise<T> {
    try {
      return await withSpan(`driver.${driver.name} ${operation}`, { 'virtbus.driver': driver.name, 'virtbus.domain.uuid': stored.config.uuid }, fn);
    } catch (error) {
      this.options.onDriverError?.(driver.name, operation, error);
      throw error;
    }
  }

  /** What the metrics collector lists without asking any hypervisor. */
  listings(): DomainListing[] {
    return [...this.domains.values()].map((stored) => ({
      uuid: stored.config.uuid,
      name: stored.config.name,
      state: stored.state,
      reason: stored.reason,
      vcpus: stored.config.vcpus,
      memoryMiB: stored.config.memory,
      os: osOf(stored.config),
      ...(isActive(stored.state) ? devicesOf(stored.config) : {}),
    }));
  }

  async exec(id: string, request: ExecRequest): Promise<ExecResult> {
    const stored = this.resolve(id);
    const driver = this.driverFor(stored.config);
    if (!driver.exec) throw new VirtError('OPERATION_UNSUPPORTED', `the ${driver.name} driver cannot exec`);
    if (stored.state !== 'running') throw new VirtError('OPERATION_INVALID', `domain ${stored.config.name} is ${stored.state}`);
    return driver.exec.exec(stored, request);
  }

  /** The definition the domain's manager below holds (libvirt's XML for driver libvirt). */
  async nativeXml(id: string): Promise<DomainXml> {
    const stored = this.resolve(id);
    const driver = this.driverFor(stored.config);
    if (!driver.native) throw new VirtError('OPERATION_UNSUPPORTED', `the ${driver.name} driver holds no native definition (only driver libvirt does)`);
    return { uuid: stored.config.uuid, name: stored.config.name, xml: await driver.native.domainXml(stored) };
  }

  /**
   * Adopts domains the node's libvirtd holds (named, or every one not known yet, DOMAIN_IMPORT_MAX per call): each is
   * defined with libvirt's XML as its definition, then takes libvirt's state and id (a running one keeps running).
   */
  async importNative(request: DomainImport): Promise<DomainImportResult> {
    const driver = this.options.drivers.find((candidate) => candidate.native);
    if (!driver?.native) throw new VirtError('OPERATION_UNSUPPORTED', `node ${this.options.node} has no libvirt driver (agent --libvirt-uri)`);
    const native = driver.native;
    const wanted = request.domains ?? (await native.listNative()).filter(({ uuid, name }) => !this.domains.has(uuid) && !this.domains.findByName(name)).map(({ uuid }) => uuid);
    const imported: Domain[] = [];
    for (const id of wanted.slice(0, DOMAIN_IMPORT_MAX)) {
      const { post, run } = await native.describeNative(id);
      await this.defineConfig(configFromPost(post));
      await this.locks.run(post.uuid, () => this.apply(post.uuid, run));
      imported.push(this.view(this.resolve(post.uuid)));
    }
    return { imported, remaining: Math.max(0, wanted.length - DOMAIN_IMPORT_MAX) };
  }

  /**
   * A hypervisor-specific call (qemu-monitor-command, lxc-enter-namespace): only a driver with the capability, only on a
   * running domain, which is marked tainted (durably, until it stops) before the call reaches around the agent.
   */
  async hypervisorCall<C, T>(id: string, taint: DomainTaint, what: string, pick: (driver: HypervisorDriver) => C | undefined, call: (capability: C, record: DomainRecord) => Promise<T>): Promise<T> {
    const stored = this.resolve(id);
    const driver = this.driverFor(stored.config);
    const capability = pick(driver);
    if (!capability) throw new VirtError('OPERATION_UNSUPPORTED', `${what} is not for ${driver.name} domains`);
    if (!isActive(stored.state)) throw new VirtError('OPERATION_INVALID', `domain ${stored.config.name} is ${stored.state}`);
    if (!stored.tainted?.includes(taint)) {
      const next: StoredDomain = { ...stored, tainted: [...(stored.tainted ?? []), taint] };
      this.domains.set(stored.config.uuid, next);
      await this.persist(next);
    }
    this.options.logger.warn({ domain: stored.config.name, taint, what }, 'hypervisor-specific call: domain tainted');
    return call(capability, this.resolve(stored.config.uuid));
  }

  /** Stops a domain just started and puts the record back as it was before the start. */
  private async undoStart(driver: HypervisorDriver, before: StoredDomain, result: RunState): Promise<void> {
    const uuid = before.config.uuid;
    const running: StoredDomain = { ...before, state: result.state, reason: result.reason, ...(result.runtime ? { runtime: result.runtime } : {}) };
    try {
      await driver.destroy(running);
    } catch (error) {
      this.options.logger.error({ err: error, domain: before.config.name }, 'could not stop a domain whose start could not be recorded');
      return;
    }
    if (!this.domains.has(uuid)) return;
    this.domains.set(uuid, before);
    // the domain file may already say running (QEMU's runtime facts): it is put back too, or stays pending until it can be
    try {
      await this.persist(before);
    } catch {
      return;
    }
    clearTimeout(this.pendingWrites.get(uuid)?.timer);
    this.pendingWrites.delete(uuid);
  }

  /** Applies a state change from a call or from the driver; an unchanged state publishes nothing. */
  /** A new definition on disk, in the map and in the event log, or (full disk) none of them and STORAGE_FULL. */
  private async addDefinition(stored: StoredDomain): Promise<void> {
    const uuid = stored.config.uuid;
    // One wait for the disk: the DEFINED record carries the whole definition (durable in the log until a snapshot, before
    // which the store syncs the file), and the file is written meanwhile without a sync. Whichever failed, the other is
    // undone. After a crash the file is rebuilt from the record (DomainStore.loadAll), or a file without its event gets DEFINED.
    // Visible before its DEFINED event can go out (subscribers ask for what events announce); jobs on it wait for the
    // writes under its lock, and a failed define takes it away again.
    await this.locks.run(uuid, async () => {
      this.domains.set(uuid, stored);
      const [saved, recorded] = await Promise.allSettled([this.options.store.saveUnsynced(stored), this.publish(stored, { type: 'DEFINED', detail: 'ADDED' }, stored)]);
      if (saved.status === 'fulfilled' && recorded.status === 'fulfilled') return;
      this.domains.delete(uuid);
      await this.undoDefinition(stored, saved, recorded);
    });
  }

  private async undoDefinition(stored: StoredDomain, saved: PromiseSettledResult<void>, recorded: PromiseSettledResult<void>): Promise<never> {
    const uuid = stored.config.uuid;
    if (saved.status === 'fulfilled') {
      await this.options.store.remove(uuid).catch((removal: unknown) => this.options.logger.error({ err: removal, domain: stored.config.name }, 'undone define left its file'));
    } else if (recorded.status === 'fulfilled') {
      await this.publish(stored, { type: 'UNDEFINED', detail: 'REMOVED' }).catch((undo: unknown) =>
        this.options.logger.error({ err: undo, domain: stored.config.name }, 'undone define left its DEFINED event (the next start records UNDEFINED)'),
      );
    }
    const failed = saved.status === 'rejected' ? saved.reason : (recorded as PromiseRejectedResult).reason;
    throw stateWriteError(stored.config.name, failed);
  }

  private async apply(uuid: string, change: RunState): Promise<void> {
    const stored = this.domains.get(uuid);
    if (!stored) return;
    // nothing changes (an adopt finding the domain as recorded): no copy, no comparison, no write
    if (change.state === stored.state && change.runtime === undefined && (isActive(change.state) || stored.liveDisks === undefined)) return this.earlierWrites(stored);
    const next: StoredDomain = { ...stored };
    if (change.runtime === null) delete next.runtime;
    else if (change.runtime !== undefined) next.runtime = change.runtime;
    const changes = lifecycleChanges(stored.state, change.state, change.reason);
    if (!isActive(change.state)) {
      delete next.liveDisks;
      delete next.id;
      delete next.tainted;
    } else if (change.id !== undefined) {
      // the hypervisor numbers its domains (libvirt): the agent's counter stays above its ids
      next.id = change.id;
      this.nextId = Math.max(this.nextId, change.id + 1);
    } else if (next.id === undefined || !isActive(stored.state)) next.id = this.nextId++;
    if (stored.state !== change.state) {
      next.state = change.state;
      next.reason = change.reason;
      next.stateChangedAt = new Date().toISOString();
    }
    this.domains.set(uuid, next);
    // The event log record carries the new state; the file is written only for what the log does not hold (runtime
    // facts, disks of the running domain, a state change without an event). An adopt finding the domain as recorded writes nothing.
    // A stop that drops the runtime is all in its record (runtimeCleared): the load drops what the file still holds of the run.
    const runtimeCleared = changes.length > 0 && !isActive(next.state) && next.runtime === undefined && stored.runtime !== undefined;
    const fileChanged =
      !runtimeCleared &&
      ((next.state !== stored.state && changes.length === 0) ||
      (next.id !== stored.id && changes.length === 0) ||
      JSON.stringify(next.runtime) !== JSON.stringify(stored.runtime) ||
      JSON.stringify(liveDisksOf(next)) !== JSON.stringify(liveDisksOf(stored)) ||
      next.tainted !== stored.tainted);
    // Both writes start now, in the order of the memory change: the events take their seqs here, so a concurrent apply
    // (a driver-observed exit racing a destroy) can never number its events before this one's.
    const writes: Promise<unknown>[] = fileChanged ? [this.persist(next)] : [];
    for (const lifecycle of changes) writes.push(this.publish(next, lifecycle, undefined, runtimeCleared));
    // the state this apply leaves may have been written by an earlier one still in flight (QEMU's exit observed during its destroy)
    const earlier = this.applying.get(uuid);
    if (earlier) writes.push(earlier);
    if (writes.length > 0) this.trackWrites(uuid, writes);
    const outcomes = await Promise.allSettled(writes);
    const failed = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    if (!failed && next.transient && !isActive(next.state) && isActive(stored.state)) this.forgetTransient(uuid);
    if (failed) {
      // the change happened (a guest that stopped cannot be restarted as if nothing was): shown as pending, retried
      this.markPending(uuid);
      throw stateWriteError(stored.config.name, failed.reason);
    }
  }

  private trackWrites(uuid: string, writes: Promise<unknown>[]): void {
    const all: Promise<unknown> = Promise.all(writes);
    this.applying.set(uuid, all);
    // only writes in flight are kept; a failure is answered by the apply that made it
    all.catch(() => undefined).then(() => {
      if (this.applying.get(uuid) === all) this.applying.delete(uuid);
    });
  }

  /** An apply that changes nothing still reports a state: it answers once that state's writes in flight are done. */
  private async earlierWrites(stored: StoredDomain): Promise<void> {
    const earlier = this.applying.get(stored.config.uuid);
    if (!earlier) return;
    try {
      await earlier;
    } catch (error) {
      throw stateWriteError(stored.config.name, error);
    }
  }

  /** Marks a domain whose current state (and, `updated`, definition) is not on disk and schedules a retry of the write. */
  private markPending(uuid: string, updated = false): void {
    const pending = this.pendingWrites.get(uuid);
    if (pending) {
      pending.updated ||= updated;
      return;
    }
    this.pendingWrites.set(uuid, { delayMs: RETRY_FIRST_MS, ...(updated ? { updated } : {}) });
    this.scheduleRetry(uuid);
  }

  private scheduleRetry(uuid: string): void {
    const pending = this.pendingWrites.get(uuid);
    if (!pending || this.closing) return;
    clearTimeout(pending.timer);
    pending.timer = setTimeout(() => {
      pending.timer = undefined;
      this.locks
        .run(uuid, () => this.writePending(uuid))
        .catch((error: unknown) => {
          this.options.logger.warn({ err: error, uuid, retryMs: pending.delayMs }, 'state write still failing; retrying');
          pending.delayMs = Math.min(pending.delayMs * 2, RETRY_MAX_MS);
          this.scheduleRetry(uuid);
        });
    }, pending.delayMs);
    pending.timer.unref();
  }

  /**
   * Writes a pending domain as it is now (under its job lock): the file, then the lifecycle events from the state its last
   * durable event recorded to the current one (an UNDEFINED for a domain removed meanwhile). Throws while the disk is full.
   */
  private async writePending(uuid: string): Promise<void> {
    const pending = this.pendingWrites.get(uuid);
    if (!pending) return;
    const stored = this.domains.get(uuid);
    const last = this.options.events.recordedDomains()?.get(uuid);
    if (stored) {
      await this.persist(stored);
      const changes: LifecycleChange[] = last
        ? [...(pending.updated ? [{ type: 'DEFINED', detail: 'UPDATED' } as const] : []), ...lifecycleChanges(last.state, stored.state, stored.reason)]
        : [{ type: 'DEFINED', detail: 'ADDED' } as const, ...lifecycleChanges('shutoff', stored.state, stored.reason)];
      // numbered together here, written by one group commit
      await Promise.all(changes.map((change) => this.publish(stored, change)));
    } else if (last) {
      await this.options.events.emit({ uuid, name: last.name }, { type: 'UNDEFINED', detail: 'REMOVED' }, 'shutoff', 'unknown');
    }
    clearTimeout(this.pendingWrites.get(uuid)?.timer);
    this.pendingWrites.delete(uuid);
    this.options.logger.info({ uuid, domain: stored?.config.name ?? last?.name }, 'pending state written');
  }

  /** A domain with a pending write takes no other change until that write succeeds (its events would come out of order). */
  private async requireRecorded(uuid: string): Promise<void> {
    if (!this.pendingWrites.has(uuid)) return;
    try {
      await this.writePending(uuid);
    } catch (error) {
      const name = this.domains.get(uuid)?.config.name ?? uuid;
      throw stateWriteError(name, Object.assign(new Error(`its last change is not yet written: ${(error as Error)?.message ?? String(error)}`, { cause: error }), { code: (error as NodeJS.ErrnoException | undefined)?.code }));
    }
  }

  private async adopt(uuid: string): Promise<void> {
    await this.locks.run(uuid, async () => {
      const stored = this.resolve(uuid);
      const driver = this.driversByType.get(stored.config.driver);
      if (!driver) {
        this.options.logger.warn({ domain: stored.config.name, driver: stored.config.driver }, 'no driver for domain; leaving it as recorded');
        return;
      }
      try {
        await this.apply(uuid, await driver.adopt(stored));
      } catch (error) {
        this.options.logger.error({ err: error, domain: stored.config.name }, 'could not adopt domain');
      }
    });
  }

  private persist(stored: StoredDomain): Promise<void> {
    const uuid = stored.config.uuid;
    const write = (this.writes.get(uuid) ?? Promise.resolve()).then(() => {
      // A domain undefined meanwhile must not be written back.
      if (this.domains.get(uuid) === undefined) return;
      return this.options.store.save(this.domains.get(uuid)!);
    });
    const tail: Promise<void> = write
      .catch((error: unknown) => this.options.logger.error({ err: error, uuid }, 'could not persist domain'))
      .then(() => {
        // Only a write still in progress is kept: 10,000 idle domains hold no settled promise chains.
        if (this.writes.get(uuid) === tail) this.writes.delete(uuid);
      });
    this.writes.set(uuid, tail);
    return write;
  }

  private async publish(stored: StoredDomain, change: LifecycleChange, definition?: StoredDomain, runtimeCleared = false): Promise<void> {
    const { uuid, name, labels } = stored.config;
    const id = isActive(stored.state) ? stored.id : undefined;
    const domain = { uuid, name, ...(labels ? { labels } : {}), ...(id !== undefined ? { id } : {}), ...(runtimeCleared ? { runtimeCleared: true as const } : {}) };
    await this.options.events.emit(domain, change, stored.state, stored.reason, stored.stateChangedAt, definition);
  }

  /** Records a domain event beyond the lifecycle (REBOOT, DEVICE_ADDED…) for a known domain; a failure is logged, never thrown. */
  async emitDomainEvent(uuid: string, event: DomainEventName, details?: DomainEventDetails): Promise<void> {
    const stored = this.domains.get(uuid);
    if (!stored) return;
    await this.options.events
      .emitDomainEvent({ uuid, name: stored.config.name }, event, details)
      .catch((error: unknown) => this.options.logger.error({ err: error, uuid, event }, 'could not record domain event'));
  }

  private contextFor(driver: HypervisorDriver): DriverContext {
    const stateDir = StateDir.driver(this.options.stateDir, driver.name);
    return {
      node: this.options.node,
      stateDir,
      nvramDir: StateDir.nvram(this.options.stateDir),
      tpmDir: StateDir.tpm(this.options.stateDir),
      logger: this.options.logger.child({ driver: driver.name }),
      ...(this.options.networks ? { networks: this.options.networks } : {}),
      observedState: (uuid, change) => {
        this.apply(uuid, change).catch((error: unknown) => this.options.logger.error({ err: error, uuid }, 'could not apply observed state'));
      },
      domainEvent: (uuid, event, details) => void this.emitDomainEvent(uuid, event, details),
      saveRuntime: async (uuid, runtime: DomainRuntime | null) => {
        const stored = this.domains.get(uuid);
        if (!stored) return;
        const next: StoredDomain = { ...stored };
        if (runtime === null) delete next.runtime;
        else next.runtime = runtime;
        this.domains.set(uuid, next);
        await this.persist(next);
      },
    };
  }

  /** virsh takes a running domain's id where it takes a name; a domain named like a number wins (looked up first). */
  private findRunningById(id: string): StoredDomain | undefined {
    if (!/^[1-9]\d{0,9}$/.test(id)) return undefined;
    const wanted = Number(id);
    for (const stored of this.domains.values()) if (stored.id === wanted && isActive(stored.state)) return stored;
    return undefined;
  }

  private resolve(id: string): StoredDomain {
    const stored = isUuid(id) ? this.domains.get(id.toLowerCase()) : (this.domains.findByName(id) ?? this.findRunningById(id));
    if (!stored) throw new VirtError('NO_DOMAIN', `no domain ${id} on node ${this.options.node}`);
    return stored;
  }


  private hypervisorOf(config: DomainConfig): { hypervisor?: string } {
    const hypervisor = this.driversByType.get(config.driver)?.native?.hypervisor;
    return hypervisor ? { hypervisor } : {};
  }

  private view(stored: StoredDomain): Domain {
    return {
      uuid: stored.config.uuid,
      name: stored.config.name,
      node: this.options.node,
      driver: stored.config.driver,
      state: stored.state,
      reason: stored.reason,
      persistent: stored.transient !== true,
      autostart: stored.config.autostart,
      config: publicConfig(stored.config),
      stateChangedAt: stored.stateChangedAt,
      ...this.hypervisorOf(stored.config),
      ...(isActive(stored.state) && stored.id !== undefined ? { id: stored.id } : {}),
      ...(isActive(stored.state) ? { liveDisks: liveDisksOf(stored) } : {}),
      ...(isActive(stored.state) && stored.tainted?.length ? { tainted: stored.tainted } : {}),
      ...(this.pendingWrites.has(stored.config.uuid) ? { persistPending: true as const } : {}),
    };
  }
}

const HOST_ARCH: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', ia32: 'i686', ppc64: 'ppc64le', s390x: 's390x' };

/** libvirt's <os><type> of the domain for libvirt_domain_info: containers are `exe`, machines `hvm` on the host's arch. */
function osOf(config: DomainConfig): NonNullable<DomainListing['os']> {
  if (config.driver === 'lxc') return { type: 'exe', arch: HOST_ARCH[process.arch] ?? process.arch, machine: '' };
  return { type: 'hvm', arch: HOST_ARCH[process.arch] ?? process.arch, machine: config.os?.machine ?? 'pc' };
}

/** The devices of an active domain for the block and interface info metrics. */
function devicesOf(config: DomainConfig): Pick<DomainListing, 'disks' | 'nics'> {
  const targets = diskTargets(config.disks);
  return {
    disks: config.disks.map((disk, index) => ({
      target: targets[index] ?? '',
      bus: disk.bus ?? 'virtio',
      format: disk.format ?? 'qcow2',
      source: 'path' in disk.source ? disk.source.path : `${disk.source.pool}/${disk.source.volume}`,
    })),
    nics: config.nics
      .filter((nic) => nic.type !== 'none')
      .map((nic) => ({ type: nic.type, ...(nic.source ? { source: nic.source } : {}), mac: nic.mac ?? '', model: nic.model ?? 'virtio' })),
  };
}

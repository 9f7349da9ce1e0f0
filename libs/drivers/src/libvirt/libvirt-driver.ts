import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { vmOnlyFields } from '../qemu/machine.js';
import { DomainStates, isActive, StateReasons, VirtError, type DomainSnapshot, type SnapshotKind, type DomainEventDetails, type DomainEventName as ContractEventName, type DomainConfig, type DomainsPost, type DomainState, type DomainStats, type DriverInfo, type StateReason } from '@virtbus/api-contract';
import type { BlockJobCapability, DiskCapability, NicCapability, ConsoleCapability, ConsoleSession, DomainRecord, DriverContext, ExecCapability, GraphicsCapability, GuestAgentCapability, HypervisorDriver, IncomingOptions, IncomingTarget, MigrationCapability, MonitorCapability, MigrationHostFacts, MigrationStatus, NativeDefinitionCapability, OutgoingOptions, ResourceCapability, RunState, SaveRestoreCapability, SnapshotCapability, SnapshotReverted, SnapshotTaken, StartOptions, StatsCapability, WaitOptions } from '../driver.js';
import { driverCapabilities } from '../driver.js';
import { diskTargets, macFor } from '../qemu/command-line.js';
import { libvirtdAddress, LibvirtClient, parseLibvirtUri } from './client.js';
import { LibvirtRemoteError } from './errors.js';
import { LibvirtGraphics } from './graphics.js';
import { LibvirtGuestAgent } from './guest-agent.js';
import { LibvirtQemuMonitor } from './qemu-monitor.js';
import { configFromDomainXml, diskXml, escapeXml, nicXml } from './domain-xml.js';
import { readSaveHeader, writeSaveFile } from '../save-file.js';
import { LibvirtBlockJobs } from './libvirt-block-jobs.js';
import { LibvirtHotplug, type LibvirtDomainAccess } from './libvirt-hotplug.js';
import { AffectFlag, BlockJobTypeNames, DomainEvents, JobType, ListDomainsFlag, MigrateFlag, SaveFlag, UndefineFlag, XmlFlag, StatsGroup, uuidBytes, uuidString, type DomainEventName, type DomainRef, type TypedParam } from './protocol.js';
import { decodeXdr } from './xdr.js';

/** A libvirt domain event other than lifecycle, as libvirt reports it (fields named as in its remote protocol). */
export interface LibvirtDomainEvent {
  type: Exclude<DomainEventName, 'lifecycle'>;
  uuid: string;
  name: string;
  /** The event's own fields (64-bit numbers as decimal strings). */
  detail: Record<string, string | number | null>;
}

export interface LibvirtDriverOptions {
  /** libvirt URI of the host's libvirtd (`qemu:///system`, `xen:///system`, `test:///default`, `qemu+unix:///system?socket=…`). */
  uri: string;
  callTimeoutMs?: number;
  /** libvirtd's file system root as the agent sees it (e.g. `/host` in a container, `/proc/PID/root`); default: shared. Used to reach the VNC sockets libvirt makes. */
  root?: string;
  /** How other hosts' libvirtds reach this one when it takes a migration (`qemu+tls://host/system`); default `uri`, right only when both agents share a host. */
  peerUri?: string;
  /** Non-lifecycle domain events as libvirt sends them (they also go to DriverContext.domainEvent in the contract's catalogue; lifecycle ones to observedState). */
  onDomainEvent?: (event: LibvirtDomainEvent) => void;
}

/** virDomainEventWatchdogAction, virDomainEventIOErrorAction, virDomainBlockJobType, virConnectDomainEventBlockJobStatus, … by number. */
const WATCHDOG_ACTIONS = ['none', 'pause', 'reset', 'poweroff', 'shutdown', 'debug', 'inject-nmi'];
const IO_ERROR_ACTIONS = ['ignore', 'pause', 'report'];
const BLOCK_JOB_STATUSES = ['COMPLETED', 'FAILED', 'CANCELED', 'READY'];
const DISK_CHANGE_REASONS = ['MISSING_ON_START', 'DROP_MISSING_ON_START'];
const TRAY_REASONS = ['OPEN', 'CLOSE'];
const AGENT_STATES = [undefined, 'CONNECTED', 'DISCONNECTED'] as const;
const AGENT_REASONS = ['unknown', 'domain-started', 'channel'];
const METADATA_TYPES = ['description', 'title', 'element'];

/** A libvirt event in the contract's domain-event catalogue (the qemu driver's QMP events map to the same names and fields). */
export function contractEventOf(event: LibvirtDomainEvent): { event: ContractEventName; details: DomainEventDetails } {
  const d = event.detail;
  const num = (key: string) => Number(d[key] ?? 0);
  const named = (names: readonly (string | undefined)[], key: string) => names[num(key)] ?? String(d[key]);
  const text = (key: string) => (typeof d[key] === 'string' ? { [key === 'devAlias' ? 'device' : key]: d[key] } : {});
  switch (event.type) {
    case 'reboot':
      return { event: 'REBOOT', details: {} };
    case 'rtcChange':
      return { event: 'RTC_CHANGE', details: { offset: num('offset') } };
    case 'watchdog':
      return { event: 'WATCHDOG', details: { action: named(WATCHDOG_ACTIONS, 'action') } };
    case 'ioError':
      return { event: 'IO_ERROR', details: { ...text('devAlias'), path: String(d['srcPath']), action: named(IO_ERROR_ACTIONS, 'action') } };
    case 'blockJob2':
      return { event: 'BLOCK_JOB', details: { device: String(d['dst']), jobType: named(BlockJobTypeNames, 'type'), status: named(BLOCK_JOB_STATUSES, 'status') } };
    case 'diskChange':
      return {
        event: 'DISK_CHANGE',
        details: { ...text('devAlias'), ...(d['oldSrcPath'] ? { oldSource: String(d['oldSrcPath']) } : {}), ...(d['newSrcPath'] ? { newSource: String(d['newSrcPath']) } : {}), reason: named(DISK_CHANGE_REASONS, 'reason') },
      };
    case 'trayChange':
      return { event: 'TRAY_CHANGE', details: { ...text('devAlias'), reason: named(TRAY_REASONS, 'reason') } };
    case 'balloonChange':
      return { event: 'BALLOON_CHANGE', details: { actualKiB: num('actual') } };
    case 'deviceRemoved':
      return { event: 'DEVICE_REMOVED', details: text('devAlias') };
    case 'deviceAdded':
      return { event: 'DEVICE_ADDED', details: text('devAlias') };
    case 'agentLifecycle': {
      const state = AGENT_STATES[num('state')];
      return { event: 'AGENT_LIFECYCLE', details: { ...(state ? { state } : {}), reason: named(AGENT_REASONS, 'reason') } };
    }
    case 'metadataChange':
      return { event: 'METADATA_CHANGE', details: { metadata: named(METADATA_TYPES, 'type') } };
  }
}

/** Event procedure number → its name in DomainEvents. */
const EventByProcedure = new Map<number, DomainEventName>(Object.entries(DomainEvents).map(([name, event]) => [event.procedure, name as DomainEventName]));
/** virDomainEventType DEFINED / UNDEFINED: no run-state change. */
const LIFECYCLE_DEFINED = 0;
const LIFECYCLE_UNDEFINED = 1;
/** Stats groups read for a domain's stats slot. */
const STATS_GROUPS = StatsGroup.STATE | StatsGroup.CPU_TOTAL | StatsGroup.BALLOON | StatsGroup.VCPU | StatsGroup.INTERFACE | StatsGroup.BLOCK;
const VCPU_STATES = ['offline', 'running', 'blocked'] as const;

/** virTypedParameter list → name → number (64-bit values as numbers) or string. */
function paramMap(params: readonly TypedParam[]): Map<string, number | string> {
  return new Map(params.map(({ field, value }) => [field, typeof value.value === 'bigint' ? Number(value.value) : value.value]));
}

/** GetAllDomainStats' typed parameters in virtbus' DomainStats groups (the metric names of every driver come from these). */
export function statsFromParams(params: readonly TypedParam[], base: Pick<DomainStats, 'uuid' | 'name' | 'state' | 'reason' | 'collectedAt'>): DomainStats {
  const p = paramMap(params);
  const num = (key: string) => (typeof p.get(key) === 'number' ? (p.get(key) as number) : undefined);
  const count = (key: string) => num(key) ?? 0;
  const str = (key: string) => (typeof p.get(key) === 'string' ? (p.get(key) as string) : undefined);
  const stats: DomainStats = { ...base };
  if (num('cpu.time') !== undefined) stats.cpu = { timeNs: count('cpu.time'), ...(num('cpu.user') !== undefined ? { userNs: count('cpu.user') } : {}), ...(num('cpu.system') !== undefined ? { systemNs: count('cpu.system') } : {}) };
  if (num('balloon.maximum') !== undefined) {
    const kib = (key: string) => (num(key) !== undefined ? count(key) * 1024 : undefined);
    const memory: NonNullable<DomainStats['memory']> = { maximumBytes: kib('balloon.maximum')! };
    for (const [field, key] of [['currentBytes', 'balloon.current'], ['rssBytes', 'balloon.rss'], ['usableBytes', 'balloon.usable'], ['unusedBytes', 'balloon.unused'], ['availableBytes', 'balloon.available']] as const) {
      const value = kib(key);
      if (value !== undefined) memory[field] = value;
    }
    stats.memory = memory;
  }
  if (num('vcpu.current') !== undefined) {
    const list = [];
    for (let id = 0; id < count('vcpu.maximum'); id++) {
      const state = num(`vcpu.${id}.state`);
      if (state === undefined) continue;
      list.push({ id, state: VCPU_STATES[state] ?? 'offline', ...(num(`vcpu.${id}.time`) !== undefined ? { timeNs: count(`vcpu.${id}.time`) } : {}) });
    }
    stats.vcpu = { current: count('vcpu.current'), maximum: count('vcpu.maximum'), list };
  }
  if (num('net.count') !== undefined) {
    stats.net = Array.from({ length: count('net.count') }, (_, i) => {
      const k = (key: string) => count(`net.${i}.${key}`);
      return { name: str(`net.${i}.name`) ?? `net${i}`, rxBytes: k('rx.bytes'), rxPackets: k('rx.pkts'), rxErrors: k('rx.errs'), rxDrops: k('rx.drop'), txBytes: k('tx.bytes'), txPackets: k('tx.pkts'), txErrors: k('tx.errs'), txDrops: k('tx.drop') };
    });
  }
  if (num('block.count') !== undefined) {
    stats.block = Array.from({ length: count('block.count') }, (_, i) => {
      const k = (key: string) => count(`block.${i}.${key}`);
      const path = str(`block.${i}.path`);
      const optional = (field: string, key: string) => (num(`block.${i}.${key}`) !== undefined ? { [field]: k(key) } : {});
      return {
        name: str(`block.${i}.name`) ?? `block${i}`,
        ...(path ? { path } : {}),
        readRequests: k('rd.reqs'),
        readBytes: k('rd.bytes'),
        readTimeNs: k('rd.times'),
        writeRequests: k('wr.reqs'),
        writeBytes: k('wr.bytes'),
        writeTimeNs: k('wr.times'),
        ...optional('flushRequests', 'fl.reqs'),
        ...optional('capacityBytes', 'capacity'),
        ...optional('allocationBytes', 'allocation'),
      };
    });
  }
  return stats;
}

/** VIR_DOMAIN_START_PAUSED */
const START_PAUSED = 1;
const POLL_MS = 100;
/** Reconnect backoff after libvirtd went away (a restart keeps its domains running). */
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 10_000;
const VIR_ERR_INVALID_ARG = 8;
/** libvirt's VIR_ERR_INVALID_ARG: what a driver answers to flags it does not take. */
const isInvalidArg = (error: unknown) => error instanceof VirtError && error.cause instanceof LibvirtRemoteError && error.cause.libvirtCode === VIR_ERR_INVALID_ARG;

/** Runtime of a domain whose definition is libvirt's XML (imported): a start does not define it from virtbus' config. */
export const NATIVE_DEFINITION = { definition: 'libvirt-xml' } as const;
const isNativeDefinition = (domain: DomainRecord) => domain.runtime?.['definition'] === NATIVE_DEFINITION.definition;
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;


/** libvirt's (state, reason) numbers to virtbus' names: both follow virDomainState and its per-state reason enums. */
export function runStateOf(state: number, reason: number): RunState {
  const name: DomainState = DomainStates[state] ?? 'nostate';
  const reasons: readonly StateReason[] = StateReasons[name];
  return { state: name, reason: reasons[reason] ?? 'unknown' };
}

const BOOT_DEV = { hd: 'hd', cdrom: 'cdrom', network: 'network' } as const;

/** What of a config this driver cannot hand to libvirt (virtbus firewall filters, containers). */
function unrenderable(config: DomainConfig): string[] {
  return [config.nics.some((nic) => nic.filter !== undefined) && 'NIC filters', config.container && 'container'].filter((item): item is string => typeof item === 'string');
}

/** virtbus' config as domain XML for libvirt's define: CPU, memory and balloon, boot (direct kernel or boot order), disks (files, libvirt pool volumes), user/bridge/network NICs, serial console, VNC; ACPI for guest shutdown and PCI hotplug. */
export function renderDomainXml(config: DomainConfig, hypervisor: string): string {
  const attr = (value: string) => `'${escapeXml(value)}'`;
  const os = config.os ?? {};
  const osXml = [
    `<type${os.machine ? ` machine=${attr(os.machine)}` : ''}>hvm</type>`,
    os.kernel ? `<kernel>${escapeXml(os.kernel)}</kernel>` : '',
    os.initrd ? `<initrd>${escapeXml(os.initrd)}</initrd>` : '',
    os.cmdline ? `<cmdline>${escapeXml(os.cmdline)}</cmdline>` : '',
    ...(os.boot ?? []).map((dev) => `<boot dev='${BOOT_DEV[dev]}'/>`),
  ].join('');
  const targets = diskTargets(config.disks);
  // the agent resolves its pool volumes to paths before every start; one left unresolved names libvirt's pool
  const disks = config.disks.map((disk, index) => diskXml(disk, targets[index]!));
  // a network NIC joins the libvirt host's network of that name
  const nics = config.nics.filter((nic) => nic.type !== 'none').map((nic, index) => nicXml(nic, nic.mac ?? macFor(config.uuid, index)));
  const console = (config.console?.type ?? 'serial') === 'serial' ? "<serial type='pty'/><console type='pty'/>" : '';
  // QEMU domains get qemu-ga's channel like the qemu driver's (libvirt makes its socket and talks to the agent itself)
  const agentChannel = hypervisor === 'qemu' || hypervisor === 'kvm' ? "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>" : '';
  // VNC on a unix socket libvirt places in the domain's own directory (never a TCP port), like the qemu driver's
  const graphics =
    config.graphics && config.graphics.type !== 'none'
      ? `<graphics type='vnc'${config.graphics.password ? ` passwd=${attr(config.graphics.password)}` : ''}><listen type='socket'/></graphics>` +
        `<video><model type='${config.graphics.video === 'virtio' ? 'virtio' : 'vga'}'/></video>`
      : '';
  const currentMemory = config.currentMemory === undefined ? '' : `<currentMemory unit='MiB'>${config.currentMemory}</currentMemory>`;
  return (
    `<domain type=${attr(hypervisor)}><name>${escapeXml(config.name)}</name><uuid>${config.uuid}</uuid>` +
    `<memory unit='MiB'>${config.memory}</memory>${currentMemory}<vcpu>${config.vcpus}</vcpu><os>${osXml}</os><features><acpi/></features>` +
    `<devices>${disks.join('')}${nics.join('')}${console}${agentChannel}${graphics}</devices></domain>`
  );
}

/**
 * Fronts a host's libvirtd over its remote protocol: the agent owns the definition and defines it into libvirt on
 * every start; libvirt runs the domain with whatever hypervisor the URI names. Capability groups libvirt has no
 * procedures for here yet (post-copy, external snapshots, …) are absent: the agent answers OPERATION_UNSUPPORTED.
 */
export class LibvirtDriver implements HypervisorDriver, StatsCapability, ConsoleCapability, NativeDefinitionCapability, ResourceCapability, SnapshotCapability, SaveRestoreCapability {
  readonly name = 'libvirt';
  readonly domainTypes = ['libvirt'] as const;
  readonly stats: StatsCapability = this;
  /** libvirt's test driver has no virDomainOpenConsole: its domains have no console. */
  get console(): ConsoleCapability | undefined {
    return this.hypervisor === 'test' ? undefined : this;
  }
  readonly native: NativeDefinitionCapability = this;
  readonly resources: ResourceCapability = this;
  readonly snapshots: SnapshotCapability = this;
  readonly saveRestore: SaveRestoreCapability = this;
  private readonly access: LibvirtDomainAccess = { connection: () => this.connection(), lookup: (domain) => this.lookup(domain), busyWith: (domain, work) => this.busyWith(domain, work) };
  private readonly qemuGraphics = new LibvirtGraphics({
    ...this.access,
    liveXml: async (domain, secure) => (await this.connection().call('domainGetXmlDesc', { dom: await this.lookup(domain), flags: secure ? XmlFlag.SECURE : 0 })).xml,
    root: () => (parseLibvirtUri(this.options.uri).tls ? undefined : (this.options.root ?? '')),
  });
  private readonly qemuAgent = new LibvirtGuestAgent(this.access);
  /** VNC relay, screenshot, send-key: QEMU domains (libvirt's test driver has no VNC socket to relay). */
  get graphics(): GraphicsCapability | undefined {
    return this.hypervisor === 'qemu' ? this.qemuGraphics : undefined;
  }
  /** qemu-ga through libvirt: QEMU domains only (the agent pass-through is libvirt-qemu's). */
  get guestAgent(): GuestAgentCapability | undefined {
    return this.hypervisor === 'qemu' ? this.qemuAgent : undefined;
  }
  get exec(): ExecCapability | undefined {
    return this.hypervisor === 'qemu' ? this.qemuAgent : undefined;
  }
  private readonly qemuMonitor = new LibvirtQemuMonitor(this.access);
  /** QMP/HMP pass-through: QEMU domains only (libvirt-qemu's monitor command). */
  get monitor(): MonitorCapability | undefined {
    return this.hypervisor === 'qemu' ? this.qemuMonitor : undefined;
  }
  /** libvirt's test driver cannot migrate. */
  get migration(): MigrationCapability | undefined {
    return this.hypervisor === 'test' ? undefined : this.migrations;
  }
  private readonly migrations = new LibvirtMigration(this);
  private readonly hotplug = new LibvirtHotplug(this.access);
  private readonly blockJobSupport = new LibvirtBlockJobs(this.access);
  /** libvirt's test driver has no device attach/detach/update nor block jobs: those groups are absent on test:///. */
  get disks(): DiskCapability | undefined {
    return this.hypervisor === 'test' ? undefined : this.hotplug;
  }
  get nics(): NicCapability | undefined {
    return this.hypervisor === 'test' ? undefined : this.hotplug;
  }
  get blockJobs(): BlockJobCapability | undefined {
    return this.hypervisor === 'test' ? undefined : this.blockJobSupport;
  }
  private client: LibvirtClient | undefined;
  private connectError: Error | undefined;
  /** libvirt's driver type lower-cased (`qemu`, `xen`, `vz`, `test`, …), the domain XML's type. */
  hypervisor = 'unknown';
  private detail = '';
  private logger: DriverContext['logger'] | undefined;
  private closing = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryMs = RETRY_MIN_MS;
  private context: DriverContext | undefined;
  /** Driver calls in flight per domain UUID: their result is the truth, so events meanwhile are not reported. */
  private readonly busy = new Map<string, number>();
  /** Bumped at each call's start and end: a re-read that saw another value is stale. */
  private readonly epochs = new Map<string, number>();
  /** Per domain, the re-reads that lifecycle events queued (one at a time, in event order). */
  private readonly rereads = new Map<string, Promise<void>>();

  constructor(private readonly options: LibvirtDriverOptions) {}

  async init(context: DriverContext): Promise<void> {
    await mkdir(context.stateDir, { recursive: true });
    this.logger = context.logger;
    this.context = context;
    await this.connect();
  }

  /** One attempt; on failure (or a later drop) retries with a bounded backoff until close(). */
  private async connect(): Promise<void> {
    const target = parseLibvirtUri(this.options.uri);
    const { uri } = target;
    try {
      const client = await LibvirtClient.connect({ ...target, callTimeoutMs: this.options.callTimeoutMs });
      const [{ type }, { hvVer }] = [await client.call('connectGetType', undefined), await client.call('connectGetVersion', undefined)];
      this.hypervisor = type.toLowerCase();
      this.detail = `${uri} on ${libvirtdAddress(target)}: ${type} ${hvVer}`;
      if (this.closing) {
        await client.close();
        return;
      }
      client.onEvent((procedure, body) => this.onEvent(procedure, body));
      await this.registerEvents(client);
      const reconnected = this.connectError !== undefined;
      this.client = client;
      this.retryMs = RETRY_MIN_MS;
      // a restarted libvirtd (or one that was away) may have seen changes we missed: re-read them all
      if (reconnected) void this.rereadAll();
      client.onClosed((error) => {
        this.connectError = error;
        if (this.closing) return;
        this.logger?.warn({ err: error }, 'libvirtd connection lost; reconnecting');
        this.scheduleReconnect();
      });
    } catch (error) {
      this.connectError = error as Error;
      this.scheduleReconnect();
    }
  }

  private scheduleReconnect(): void {
    if (this.closing || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.closing) void this.connect();
    }, this.retryMs);
    this.retryTimer.unref();
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
  }

  /** Registers every event of DomainEvents for all domains; one the hypervisor driver lacks is skipped. */
  private async registerEvents(client: LibvirtClient): Promise<void> {
    for (const [name, event] of Object.entries(DomainEvents)) {
      try {
        await client.call('connectDomainEventCallbackRegisterAny', { eventID: event.eventId, dom: null });
      } catch (error) {
        if (!VirtError.is(error, 'OPERATION_UNSUPPORTED') && !VirtError.is(error, 'INVALID_ARG')) throw error;
        this.logger?.debug({ err: error, event: name }, 'libvirt event not offered');
      }
    }
  }

  private onEvent(procedure: number, body: Buffer): void {
    const name = EventByProcedure.get(procedure);
    if (!name) return;
    let decoded: Record<string, unknown>;
    try {
      const message = decodeXdr(DomainEvents[name].layout as never, body) as Record<string, unknown>;
      decoded = (message['msg'] as Record<string, unknown> | undefined) ?? message;
    } catch (error) {
      this.logger?.warn({ err: error, event: name }, 'undecodable libvirt event');
      return;
    }
    const dom = decoded['dom'] as DomainRef;
    const uuid = uuidString(dom.uuid);
    if (name === 'lifecycle') {
      const event = decoded['event'] as number;
      if (event !== LIFECYCLE_DEFINED && event !== LIFECYCLE_UNDEFINED) this.queueReread(uuid, dom);
      return;
    }
    const detail: LibvirtDomainEvent['detail'] = {};
    for (const [key, value] of Object.entries(decoded)) {
      if (key === 'dom' || key === 'callbackID') continue;
      detail[key] = typeof value === 'bigint' ? value.toString() : (value as string | number | null);
    }
    const event: LibvirtDomainEvent = { type: name, uuid, name: dom.name, detail };
    if (name === 'blockJob2') this.blockJobSupport.onEvent(uuid, String(detail['dst']), Number(detail['status']));
    this.logger?.debug({ event }, 'libvirt domain event');
    this.options.onDomainEvent?.(event);
    const mapped = contractEventOf(event);
    this.context?.domainEvent?.(uuid, mapped.event, mapped.details);
  }

  /** A lifecycle event: libvirt's current state (not the event's, which may be older than a reply already applied). */
  private queueReread(uuid: string, dom: DomainRef): void {
    const previous = this.rereads.get(uuid) ?? Promise.resolve();
    const next = previous.then(async () => {
      if ((this.busy.get(uuid) ?? 0) > 0 || !this.client || this.client.closed) return;
      const epoch = this.epochs.get(uuid) ?? 0;
      try {
        const state = await this.stateOf(dom);
        if ((this.busy.get(uuid) ?? 0) === 0 && (this.epochs.get(uuid) ?? 0) === epoch) this.context?.observedState(uuid, state);
      } catch (error) {
        if (!VirtError.is(error, 'NO_DOMAIN')) this.logger?.warn({ err: error, uuid }, 'could not re-read a domain after its event');
      }
    });
    this.rereads.set(uuid, next);
    void next.finally(() => {
      if (this.rereads.get(uuid) === next) this.rereads.delete(uuid);
    });
  }

  private async rereadAll(): Promise<void> {
    try {
      const { domains } = await this.connection().call('connectListAllDomains', { needResults: 1, flags: ListDomainsFlag.ACTIVE | ListDomainsFlag.INACTIVE });
      for (const dom of domains) this.queueReread(uuidString(dom.uuid), dom);
    } catch (error) {
      this.logger?.warn({ err: error }, 'could not re-read libvirt domains after reconnecting');
    }
  }

  /** Marks a domain busy (delta 1) or done (-1): libvirt's events for it meanwhile are not reported. */
  markBusy(uuid: string, delta: 1 | -1): void {
    this.busy.set(uuid, (this.busy.get(uuid) ?? 0) + delta);
    this.epochs.set(uuid, (this.epochs.get(uuid) ?? 0) + 1);
    if ((this.busy.get(uuid) ?? 0) <= 0) this.busy.delete(uuid);
  }

  /** Runs one driver call on a domain, marked busy so its own events are not reported twice (or out of order). */
  async busyWith<T>(domain: DomainRecord, work: () => Promise<T>): Promise<T> {
    this.markBusy(domain.config.uuid, 1);
    try {
      return await work();
    } finally {
      this.markBusy(domain.config.uuid, -1);
    }
  }

  /** The URI another host's libvirtd reaches this one by, and the driver's directory (for a unix migration socket). */
  peerTarget(): { uri: string; stateDir: string } {
    if (!this.context) throw new VirtError('OPERATION_FAILED', 'the libvirt driver is not initialised');
    return { uri: this.options.peerUri ?? this.options.uri, stateDir: this.context.stateDir };
  }

  async probe(): Promise<DriverInfo> {
    const available = this.client !== undefined && !this.client.closed;
    return {
      name: this.name,
      domainTypes: [...this.domainTypes],
      available,
      detail: available ? this.detail : `libvirtd unreachable: ${this.connectError?.message ?? 'connection closed'}`,
      capabilities: driverCapabilities(this, [`hypervisor:${this.hypervisor}`]),
    };
  }

  validate(config: DomainConfig): void {
    if (config.driver !== 'libvirt') throw new VirtError('INVALID_ARG', `the libvirt driver runs driver 'libvirt', not '${config.driver}'`);
    const unsupported = [...unrenderable(config), ...vmOnlyFields(config).filter((field) => field !== 'currentMemory')];
    if (unsupported.length) throw new VirtError('OPERATION_UNSUPPORTED', `the libvirt driver does not render ${unsupported.join(', ')} yet`);
    if (config.currentMemory !== undefined && config.currentMemory > config.memory) throw new VirtError('INVALID_ARG', `currentMemory ${config.currentMemory} MiB exceeds memory ${config.memory} MiB`);
    diskTargets(config.disks);
  }

  connection(): LibvirtClient {
    if (!this.client || this.client.closed) throw new VirtError('OPERATION_FAILED', 'libvirtd is not connected', { cause: this.connectError });
    return this.client;
  }

  async lookup(domain: DomainRecord): Promise<DomainRef> {
    return (await this.connection().call('domainLookupByUuid', { uuid: uuidBytes(domain.config.uuid) })).dom;
  }

  /** libvirt answers a name held by another UUID with a generic VIR_ERR_OPERATION_FAILED: look first, answer DOMAIN_EXISTS. */
  async refuseNameClash(domain: DomainRecord): Promise<void> {
    try {
      const { dom } = await this.connection().call('domainLookupByName', { name: domain.config.name });
      if (uuidString(dom.uuid) !== domain.config.uuid) {
        throw new VirtError('DOMAIN_EXISTS', `libvirt already has a domain ${domain.config.name} (uuid ${uuidString(dom.uuid)}): import it instead`);
      }
    } catch (error) {
      if (!VirtError.is(error, 'NO_DOMAIN')) throw error;
    }
  }

  /** libvirt's state, and its id when the reference carries one (lookups and events do; a fresh define does not). */
  async stateOf(dom: DomainRef): Promise<RunState> {
    const { state, reason } = await this.connection().call('domainGetState', { dom, flags: 0 });
    const run = runStateOf(state, reason);
    return { ...run, ...(dom.id > 0 && isActive(run.state) ? { id: dom.id } : {}) };
  }

  async listNative(): Promise<Array<{ uuid: string; name: string }>> {
    const { domains } = await this.connection().call('connectListAllDomains', { needResults: 1, flags: ListDomainsFlag.ACTIVE | ListDomainsFlag.INACTIVE });
    return domains.map((dom) => ({ uuid: uuidString(dom.uuid), name: dom.name }));
  }

  /** A domain libvirt holds as virtbus' define request (memory and vCPUs from virDomainGetInfo, devices from its persistent XML) and its state; libvirt's XML stays its definition. */
  async describeNative(id: string): Promise<{ post: DomainsPost & { uuid: string }; run: RunState }> {
    const client = this.connection();
    const { dom } = UUID_PATTERN.test(id) ? await client.call('domainLookupByUuid', { uuid: uuidBytes(id) }) : await client.call('domainLookupByName', { name: id });
    const info = await client.call('domainGetInfo', { dom });
    const { xml } = await client.call('domainGetXmlDesc', { dom, flags: XmlFlag.INACTIVE });
    const post = {
      name: dom.name,
      uuid: uuidString(dom.uuid),
      driver: 'libvirt' as const,
      memory: Math.max(1, Math.ceil(Number(info.maxMem) / 1024)),
      vcpus: Math.max(1, info.nrVirtCpu),
      ...configFromDomainXml(xml),
    };
    return { post, run: { ...(await this.stateOf(dom)), runtime: NATIVE_DEFINITION } };
  }

  async adopt(domain: DomainRecord): Promise<RunState> {
    try {
      return await this.stateOf(await this.lookup(domain));
    } catch (error) {
      if (VirtError.is(error, 'NO_DOMAIN')) return { state: 'shutoff', reason: 'unknown' };
      throw error;
    }
  }

  async start(domain: DomainRecord, options: StartOptions): Promise<RunState> {
    return this.busyWith(domain, async () => {
      const client = this.connection();
      let dom: DomainRef;
      // an imported domain's definition is libvirt's XML: started as libvirt holds it
      if (isNativeDefinition(domain)) dom = await this.lookup(domain);
      else {
        await this.refuseNameClash(domain);
        dom = (await client.call('domainDefineXml', { xml: renderDomainXml(domain.config, this.hypervisor) })).dom;
      }
      try {
        return await this.stateOf((await client.call('domainCreateWithFlags', { dom, flags: options.paused ? START_PAUSED : 0 })).dom);
      } catch (error) {
        // some libvirt drivers (test:///) refuse START_PAUSED: start, then pause before reporting
        if (!options.paused || !isInvalidArg(error)) throw error;
        await client.call('domainCreate', { dom });
        await client.call('domainSuspend', { dom });
        return this.stateOf(await this.lookup(domain));
      }
    });
  }

  async shutdown(domain: DomainRecord, options: WaitOptions): Promise<RunState> {
    return this.busyWith(domain, async () => {
      const dom = await this.lookup(domain);
      await this.connection().call('domainShutdown', { dom });
      return this.waitFor(dom, 'shutoff', options.timeoutMs);
    });
  }

  async destroy(domain: DomainRecord): Promise<RunState> {
    return this.busyWith(domain, async () => {
      const dom = await this.lookup(domain);
      await this.connection().call('domainDestroy', { dom });
      return this.stateOf(dom);
    });
  }

  async reboot(domain: DomainRecord, _options: WaitOptions): Promise<RunState> {
    return this.busyWith(domain, async () => {
      const dom = await this.lookup(domain);
      await this.connection().call('domainReboot', { dom, flags: 0 });
      return this.stateOf(dom);
    });
  }

  async reset(domain: DomainRecord): Promise<RunState> {
    return this.busyWith(domain, async () => {
      const dom = await this.lookup(domain);
      await this.connection().call('domainReset', { dom, flags: 0 });
      return this.stateOf(dom);
    });
  }

  async suspend(domain: DomainRecord): Promise<RunState> {
    return this.busyWith(domain, async () => {
      const dom = await this.lookup(domain);
      await this.connection().call('domainSuspend', { dom });
      return this.stateOf(dom);
    });
  }

  async resume(domain: DomainRecord): Promise<RunState> {
    return this.busyWith(domain, async () => {
      const dom = await this.lookup(domain);
      await this.connection().call('domainResume', { dom });
      return this.stateOf(dom);
    });
  }

  async undefine(domain: DomainRecord): Promise<void> {
    try {
      // libvirt refuses to undefine a domain with snapshots unless their metadata goes too (the agent's goes with it)
      await this.connection().call('domainUndefineFlags', { dom: await this.lookup(domain), flags: UndefineFlag.SNAPSHOTS_METADATA });
    } catch (error) {
      if (!VirtError.is(error, 'NO_DOMAIN')) throw error;
    }
  }

  /** From GetAllDomainStats (state, cpu-total, balloon, vcpu, interface, block groups) within the deadline. */
  async domainStats(domain: DomainRecord, options: { deadlineMs: number }): Promise<DomainStats> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new VirtError('OPERATION_TIMEOUT', `libvirt stats of ${domain.config.name}: no answer in ${options.deadlineMs} ms`)), options.deadlineMs);
    });
    try {
      return await Promise.race([this.readStats(domain), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async readStats(domain: DomainRecord): Promise<DomainStats> {
    const dom = await this.lookup(domain);
    const { retStats } = await this.connection().call('connectGetAllDomainStats', { doms: [dom], stats: STATS_GROUPS, flags: 0 });
    const params = retStats[0]?.params ?? [];
    const values = paramMap(params);
    const { state, reason } = runStateOf(Number(values.get('state.state') ?? 0), Number(values.get('state.reason') ?? 0));
    const stats = statsFromParams(params, { uuid: domain.config.uuid, name: domain.config.name, state, reason: state === domain.state ? domain.reason : reason, collectedAt: new Date().toISOString() });
    if (stats.cpu) return stats;
    // hypervisor drivers that report the state group only (test:///): CPU time, memory and vCPUs from virDomainGetInfo
    const info = await this.connection().call('domainGetInfo', { dom });
    return {
      ...stats,
      cpu: { timeNs: Number(info.cpuTime) },
      memory: stats.memory ?? { maximumBytes: Number(info.maxMem) * 1024, currentBytes: Number(info.memory) * 1024 },
      vcpu: stats.vcpu ?? { current: info.nrVirtCpu, maximum: domain.config.vcpus, list: [] },
    };
  }

  /** virDomainSetVcpusFlags on the running domain (libvirt waits for the guest on an unplug where the hypervisor needs it). */
  async setVcpus(domain: DomainRecord, count: number): Promise<void> {
    await this.busyWith(domain, async () => this.connection().call('domainSetVcpusFlags', { dom: await this.lookup(domain), nvcpus: count, flags: AffectFlag.LIVE }));
  }

  /** virDomainSetMemoryFlags: the running domain's balloon target. */
  async setMemory(domain: DomainRecord, mib: number): Promise<void> {
    await this.busyWith(domain, async () => this.connection().call('domainSetMemoryFlags', { dom: await this.lookup(domain), memory: BigInt(mib) * 1024n, flags: AffectFlag.LIVE }));
  }

  /** virDomainSnapshotCreateXML: an internal snapshot libvirt keeps in the images (with RAM while the domain runs); external ones are not done here. */
  async createSnapshot(domain: DomainRecord, request: { name: string; kind: SnapshotKind }): Promise<SnapshotTaken> {
    if (request.kind !== 'internal') throw new VirtError('OPERATION_UNSUPPORTED', 'the libvirt driver takes internal snapshots only');
    return this.busyWith(domain, async () => {
      const dom = await this.lookup(domain);
      await this.connection().call('domainSnapshotCreateXml', { dom, xmlDesc: `<domainsnapshot><name>${escapeXml(request.name)}</name></domainsnapshot>`, flags: 0 });
      const targets = diskTargets(domain.config.disks);
      const disks = domain.config.disks.flatMap((disk, index) => ('path' in disk.source && !disk.readonly && disk.device !== 'cdrom' ? [{ target: targets[index]!, file: disk.source.path }] : []));
      return { state: domain.state, memory: isActive(domain.state), disks };
    });
  }

  async revertSnapshot(domain: DomainRecord, snapshot: DomainSnapshot): Promise<SnapshotReverted> {
    return this.busyWith(domain, async () => {
      const dom = await this.lookup(domain);
      const { snap } = await this.connection().call('domainSnapshotLookupByName', { dom, name: snapshot.name, flags: 0 });
      await this.connection().call('domainRevertToSnapshot', { snap, flags: 0 });
      return { run: await this.stateOf(await this.lookup(domain)) };
    });
  }

  async deleteSnapshot(domain: DomainRecord, snapshot: DomainSnapshot): Promise<Omit<SnapshotReverted, 'run'>> {
    return this.busyWith(domain, async () => {
      const { snap } = await this.connection().call('domainSnapshotLookupByName', { dom: await this.lookup(domain), name: snapshot.name, flags: 0 });
      await this.connection().call('domainSnapshotDelete', { snap, flags: 0 });
      return {};
    });
  }

  /** virDomainSaveFlags into the driver's directory, then virtbus' header line and libvirt's image as one file at `path` (renamed into place once synced). */
  async save(domain: DomainRecord, path: string): Promise<RunState> {
    return this.busyWith(domain, async () => {
      const dom = await this.lookup(domain);
      const image = this.imagePath(domain, 'save');
      await rm(image, { force: true });
      await this.connection().call('domainSaveFlags', { dom, to: image, dxml: null, flags: 0 });
      try {
        await mkdir(join(path, '..'), { recursive: true });
        await writeSaveFile(path, { config: domain.config, state: domain.state, createdAt: new Date().toISOString() }, { from: image });
      } catch (error) {
        // the domain is stopped: its state stays in libvirt's image for an operator
        throw new VirtError('OPERATION_FAILED', `domain ${domain.config.name} saved by libvirt to ${image}, but ${path} could not be written`, { cause: error });
      }
      await rm(image, { force: true });
      // libvirt forgets a transient domain once it is saved
      return this.stateOf(dom).catch((error: unknown) => {
        if (VirtError.is(error, 'NO_DOMAIN')) return { state: 'shutoff' as const, reason: 'saved' as const };
        throw error;
      });
    });
  }

  /** libvirt's image out of the save file into the driver's directory, then virDomainRestoreFlags (running or paused as asked). */
  async restore(domain: DomainRecord, path: string, options: { paused: boolean }): Promise<RunState> {
    return this.busyWith(domain, async () => {
      const { payloadOffset } = await readSaveHeader(path);
      const image = this.imagePath(domain, 'restore');
      try {
        await pipeline(createReadStream(path, { start: payloadOffset }), createWriteStream(image, { mode: 0o600 }));
        const client = this.connection();
        try {
          await client.call('domainRestoreFlags', { from: image, dxml: null, flags: options.paused ? SaveFlag.PAUSED : SaveFlag.RUNNING });
        } catch (error) {
          // some libvirt drivers (test:///) refuse the state flags: restore as saved, then pause if asked
          if (!isInvalidArg(error)) throw error;
          await client.call('domainRestoreFlags', { from: image, dxml: null, flags: 0 });
          if (options.paused) await client.call('domainSuspend', { dom: await this.lookup(domain) });
        }
      } finally {
        await rm(image, { force: true });
      }
      return this.stateOf(await this.lookup(domain));
    });
  }

  private imagePath(domain: DomainRecord, kind: 'save' | 'restore'): string {
    if (!this.context) throw new VirtError('OPERATION_FAILED', 'the libvirt driver is not initialised');
    return join(this.context.stateDir, `${domain.config.uuid}.${kind}`);
  }

  /** virDomainGetXMLDesc of the domain as libvirt holds it (its live XML while it runs). */
  async domainXml(domain: DomainRecord): Promise<string> {
    return (await this.connection().call('domainGetXmlDesc', { dom: await this.lookup(domain), flags: 0 })).xml;
  }

  /** The domain's first console through virDomainOpenConsole's stream (libvirt keeps no history: it starts empty). */
  async openConsole(domain: DomainRecord): Promise<ConsoleSession> {
    const dom = await this.lookup(domain);
    const stream = await this.connection().openStream('domainOpenConsole', { dom, devName: null, flags: 0 });
    return {
      history: Buffer.alloc(0),
      onData: (listener) => stream.onData(listener),
      onClose: (listener) => stream.onEnd(() => listener()),
      write: (data) => stream.write(data),
      close: () => stream.finish(),
    };
  }

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.retryTimer);
    await this.client?.close().catch((error: unknown) => this.connectError = error as Error);
    this.client = undefined;
  }

  /** No event callbacks yet: polls libvirt's state until it is `state` or the wait expires. */
  private async waitFor(dom: DomainRef, state: DomainState, timeoutMs: number): Promise<RunState> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const run = await this.stateOf(dom);
      if (run.state === state) return run;
      if (Date.now() >= deadline) throw new VirtError('OPERATION_TIMEOUT', `domain ${dom.name} not ${state} after ${timeoutMs} ms (still ${run.state})`);
      await sleep(POLL_MS);
    }
  }
}

/** virDomainGetJobStats' typed parameters as the migration figures every driver reports. */
export function migrationStatusOf(params: readonly TypedParam[]): MigrationStatus {
  const p = paramMap(params);
  const num = (key: string) => (typeof p.get(key) === 'number' ? (p.get(key) as number) : 0);
  return {
    phase: 'copying-ram',
    ramTransferredBytes: num('memory_processed'),
    ramRemainingBytes: num('memory_remaining'),
    ramTotalBytes: num('memory_total'),
    iteration: num('memory_iteration'),
    dirtyPagesRate: num('memory_dirty_rate'),
    diskProcessedBytes: num('disk_processed'),
    diskTotalBytes: num('disk_total'),
    ...(p.has('downtime') ? { downtimeMs: num('downtime') } : {}),
    ...(p.has('time_elapsed') ? { totalTimeMs: num('time_elapsed') } : {}),
  };
}

const MIGRATION_POLL_MS = 250;
const SHARED_STORAGE_ONLY = 'the libvirt driver migrates over shared storage only (copyStorage none)';
/** VIR_DOMAIN_JOB_STATS_COMPLETED */
const JOB_STATS_COMPLETED = 1;
/** The longest one migration call may take (libvirt answers Perform when the guest runs on the destination). */
const MIGRATION_TIMEOUT_MS = 6 * 60 * 60 * 1000;
const MACHINE_PATTERN = /<machine\b[^>]*>([^<]+)<\/machine>/g;

/**
 * Live migration through libvirt, peer to peer: the destination agent only names its libvirtd (and a stream URI),
 * the source agent's one virDomainMigratePerform3Params(PEER2PEER) makes the source libvirtd run libvirt's own
 * begin/prepare/perform/finish/confirm with the destination libvirtd (cookies, incoming QEMU, cleanup on failure),
 * so no libvirt cookie has to cross the bus and libvirt's own checks apply; the agents keep virtbus' ticket, journal
 * and events around it, and the destination's finish only resumes or pauses what libvirt started there.
 */
class LibvirtMigration implements MigrationCapability {
  constructor(private readonly driver: LibvirtDriver) {}

  /** Machine types from libvirt's capabilities; the rendered XML names no CPU model (the hypervisor's default, which libvirt's prepare checks itself), so the CPU fact is QEMU's TCG default. */
  async hostFacts(): Promise<MigrationHostFacts> {
    const { capabilities } = await this.driver.connection().call('connectGetCapabilities', undefined);
    return { machines: [...new Set([...capabilities.matchAll(MACHINE_PATTERN)].map((match) => match[1]!.trim()))], cpuModels: ['max'] };
  }

  /** Asked for a storage copy only, which this driver does not do (shared storage). */
  async diskSizes(): Promise<Record<string, number>> {
    throw new VirtError('OPERATION_UNSUPPORTED', SHARED_STORAGE_ONLY);
  }

  /** Nothing to start: libvirt's prepare runs when the source libvirtd calls; the domain is held busy here until finish or abort. */
  async prepareIncoming(domain: DomainRecord, options: IncomingOptions): Promise<{ run: RunState; target: IncomingTarget }> {
    if (options.copyDisks && Object.keys(options.copyDisks).length > 0) throw new VirtError('OPERATION_UNSUPPORTED', SHARED_STORAGE_ONLY);
    if (options.tlsDir || options.postCopy) throw new VirtError('OPERATION_UNSUPPORTED', 'the libvirt driver does not migrate with virtbus TLS or post-copy yet');
    await this.driver.refuseNameClash(domain);
    const { uri, stateDir } = this.driver.peerTarget();
    // a libvirtd on this host (unix socket): QEMU's stream on a unix socket too; a remote one: TCP on its host, port from libvirt's range
    const host = new URL(uri).hostname;
    const stream = host ? `tcp://${host}` : `unix://${this.streamSocket(domain, stateDir)}`;
    this.driver.markBusy(domain.config.uuid, 1);
    return { run: { state: 'paused', reason: 'migration' }, target: { uri: stream, libvirtUri: uri } };
  }

  private streamSocket(domain: DomainRecord, stateDir = this.driver.peerTarget().stateDir): string {
    return join(stateDir, `m-${domain.config.uuid.slice(0, 8)}.sock`);
  }

  async finishIncoming(domain: DomainRecord, resume: boolean): Promise<RunState> {
    this.driver.markBusy(domain.config.uuid, -1);
    return this.driver.busyWith(domain, async () => {
      const client = this.driver.connection();
      const dom = await this.driver.lookup(domain);
      const run = await this.driver.stateOf(dom);
      if (resume && run.state === 'paused') await client.call('domainResume', { dom });
      if (!resume && run.state === 'running') await client.call('domainSuspend', { dom });
      return this.driver.stateOf(dom);
    });
  }

  /** libvirt drops a failed incoming domain itself (one left running is destroyed), but not the stream's unix socket. */
  async abortIncoming(domain: DomainRecord): Promise<RunState> {
    this.driver.markBusy(domain.config.uuid, -1);
    await rm(this.streamSocket(domain), { force: true });
    return this.driver.busyWith(domain, async () => {
      try {
        const dom = await this.driver.lookup(domain);
        if (isActive((await this.driver.stateOf(dom)).state)) await this.driver.connection().call('domainDestroy', { dom });
      } catch (error) {
        if (!VirtError.is(error, 'NO_DOMAIN')) throw error;
      }
      return { state: 'shutoff', reason: 'failed' };
    });
  }

  /** One Perform3Params(PEER2PEER) call; virDomainGetJobStats feeds the progress meanwhile, the signal aborts libvirt's job. */
  async migrateOut(domain: DomainRecord, options: OutgoingOptions): Promise<MigrationStatus> {
    return this.driver.busyWith(domain, () => this.perform(domain, options));
  }

  private async perform(domain: DomainRecord, options: OutgoingOptions): Promise<MigrationStatus> {
    if (!options.target.libvirtUri) throw new VirtError('OPERATION_UNSUPPORTED', 'the destination is not a libvirt driver (no libvirtd URI in its answer)');
    if (options.postCopy || options.tlsDir) throw new VirtError('OPERATION_UNSUPPORTED', 'the libvirt driver does not migrate with virtbus TLS or post-copy yet');
    const client = this.driver.connection();
    const dom = await this.driver.lookup(domain);
    const flags = MigrateFlag.PEER2PEER | MigrateFlag.PERSIST_DEST | (options.live ? MigrateFlag.LIVE : 0) | (options.autoConverge ? MigrateFlag.AUTO_CONVERGE : 0) | (options.paused ? MigrateFlag.PAUSED : 0);
    const params = [
      { field: 'migrate_uri', value: { type: 7 as const, value: options.target.uri } },
      ...(options.bandwidthMiBs !== undefined ? [{ field: 'bandwidth', value: { type: 4 as const, value: BigInt(options.bandwidthMiBs) } }] : []),
    ];
    let status = migrationStatusOf([]);
    let done = false;
    // libvirt 9.0 has no migrate parameter for it: set once the job runs
    let downtimeSet = options.maxDowntimeMs === undefined;
    const abort = () => void client.call('domainAbortJob', { dom }).catch(() => 'no job');
    options.signal.addEventListener('abort', abort, { once: true });
    const perform = client.call('domainMigratePerform3Params', { dom, dconnuri: options.target.libvirtUri, params, cookieIn: Buffer.alloc(0), flags }, MIGRATION_TIMEOUT_MS).finally(() => (done = true));
    try {
      while (!done) {
        await Promise.race([perform.catch(() => undefined), sleep(MIGRATION_POLL_MS)]);
        if (done) break;
        const job = await client.call('domainGetJobStats', { dom, flags: 0 }).catch(() => undefined);
        if (job && (job.type === JobType.BOUNDED || job.type === JobType.UNBOUNDED)) {
          if (!downtimeSet) {
            await client.call('domainMigrateSetMaxDowntime', { dom, downtime: BigInt(options.maxDowntimeMs!), flags: 0 });
            downtimeSet = true;
          }
          status = migrationStatusOf(job.params);
          options.onProgress(status);
        }
      }
      await perform;
    } finally {
      options.signal.removeEventListener('abort', abort);
    }
    // the whole job's figures, which libvirt keeps on the source after it (a short migration ends between two polls)
    const completed = await client.call('domainGetJobStats', { dom, flags: JOB_STATS_COMPLETED }).catch(() => undefined);
    if (completed?.type === JobType.COMPLETED) status = migrationStatusOf(completed.params);
    return { ...status, phase: 'finishing', ramRemainingBytes: 0 };
  }

  /** libvirt ended the source's QEMU once the destination ran: its state (shut off, migrated). */
  async confirmOutgoing(domain: DomainRecord): Promise<RunState> {
    return this.driver.busyWith(domain, async () => this.driver.stateOf(await this.driver.lookup(domain)));
  }

  /** libvirt resumes the source itself when a migration fails; resumed here if it still is paused. */
  async recoverOutgoing(domain: DomainRecord, resume: boolean): Promise<RunState> {
    return this.driver.busyWith(domain, async () => {
      const dom = await this.driver.lookup(domain);
      const run = await this.driver.stateOf(dom);
      if (resume && run.state === 'paused') await this.driver.connection().call('domainResume', { dom });
      return this.driver.stateOf(dom);
    });
  }
}

import type {
  BlockCommitRequest,
  BlockCopyRequest,
  BlockIoTune,
  BlockJobInfo,
  BlockPullRequest,
  GuestInfo,
  GuestInterface,
  GuestTime,
  DomainCapabilities,
  DomainConfig,
  DomainDisk,
  DomainDriver,
  DomainEventDetails,
  DomainEventName,
  DomainNic,
  DomainSnapshot,
  DomainState,
  DomainStats,
  DomainsPost,
  DriverInfo,
  ExecRequest,
  ExecResult,
  LxcEnterCommand,
  QemuMonitorCommand,
  SnapshotDisk,
  SnapshotKind,
  StateReason,
} from '@virtbus/api-contract';
import type { Logger } from 'pino';

/** Driver-owned runtime facts (pid, sockets, start time…) that the agent persists atomically with the domain. */
export type DomainRuntime = Record<string, unknown>;

/** What the agent hands a driver for every call. */
export interface DomainRecord {
  readonly config: DomainConfig;
  readonly state: DomainState;
  readonly reason: StateReason;
  readonly runtime?: DomainRuntime;
}

export interface RunState {
  state: DomainState;
  reason: StateReason;
  /** Replaces the persisted runtime; `null` clears it, `undefined` keeps it. */
  runtime?: DomainRuntime | null;
  /** The hypervisor's own id of an active domain (libvirt's), shown instead of the agent's counter. */
  id?: number;
}

/** Where a `network` or `bridge` NIC plugs in: a bridge in the node's network namespace. */
export interface NicAttachment {
  bridge: string;
  network?: string;
}

/** The agent's view of its virtual networks, for drivers that attach NICs to them. */
export interface NetworkResolver {
  /** Network namespace (/run/netns/<name>) of the node's bridges; taps and their QEMU live there too. */
  readonly netns?: string;
  /** Throws NO_NETWORK or OPERATION_INVALID (network not active) when the NIC cannot be attached. */
  resolveNic(nic: DomainNic): NicAttachment;
}

export interface DriverContext {
  readonly node: string;
  /** A directory private to this driver under the agent's state dir. */
  readonly stateDir: string;
  readonly logger: Logger;
  /** Reports a change the driver saw on its own (guest poweroff, crash, QMP event); the agent publishes the event. */
  observedState(uuid: string, change: RunState): void;
  /** Reports a domain event beyond the lifecycle the hypervisor saw (QMP RESET, WATCHDOG…); the agent records and publishes it. */
  domainEvent?(uuid: string, event: DomainEventName, details?: DomainEventDetails): void;
  /** Persists runtime facts at once (before a long wait), so a restarted agent can find the domain. */
  saveRuntime(uuid: string, runtime: DomainRuntime | null): Promise<void>;
  /** Present when the agent manages virtual networks. */
  readonly networks?: NetworkResolver;
  /** Where per-domain firmware variables (UEFI NVRAM) live; they outlive a stop and go with undefine. */
  readonly nvramDir?: string;
  /** Where per-domain emulated TPM state (swtpm) lives; it outlives a stop and goes with undefine. */
  readonly tpmDir?: string;
}

export interface UndefineOptions {
  /** Keep the domain's UEFI NVRAM file (libvirt's undefine --keep-nvram). */
  keepNvram?: boolean;
}

export interface StartOptions {
  paused: boolean;
}

export interface WaitOptions {
  /** How long to wait for the guest; on expiry the driver throws OPERATION_TIMEOUT. */
  timeoutMs: number;
}

/** Console of a running domain: what it printed so far, then live output; keystrokes go back in. */
export interface ConsoleSession {
  readonly history: Buffer;
  onData(listener: (chunk: Buffer) => void): void;
  onClose(listener: () => void): void;
  write(data: Buffer): void;
  close(): void;
}

export interface ConsoleCapability {
  openConsole(domain: DomainRecord): Promise<ConsoleSession>;
}

/** One viewer's connection to a domain's VNC server: the RFB byte stream both ways; `pause` stops reading (flow control). */
export interface GraphicsSession extends Omit<ConsoleSession, 'history'> {
  pause(): void;
  resume(): void;
}

/** The graphical console of a running domain: viewer connections, screenshots, keys without a viewer. */
export interface GraphicsCapability {
  openGraphics(domain: DomainRecord): Promise<GraphicsSession>;
  /** The screen as PNG bytes. */
  screenshot(domain: DomainRecord): Promise<Buffer>;
  sendKey(domain: DomainRecord, keys: readonly string[], holdTimeMs: number): Promise<void>;
  /** A new VNC password for the running server if it started with one (QEMU fixes the auth type at start); else it applies at next start. */
  setPassword(domain: DomainRecord, password: string): Promise<void>;
}

/** Host-side stats of one domain; must answer within `deadlineMs` or throw OPERATION_TIMEOUT. */
export interface StatsCapability {
  domainStats(domain: DomainRecord, options: { deadlineMs: number }): Promise<DomainStats>;
}

/** Run a command inside a running domain (containers: lxc-attach; like incus exec). */
export interface ExecCapability {
  exec(domain: DomainRecord, request: ExecRequest): Promise<ExecResult>;
}

/** Calls the guest agent inside a running domain answers (qemu: qemu-ga on its virtio-serial channel). */
export interface GuestAgentCapability {
  ping(domain: DomainRecord): Promise<void>;
  info(domain: DomainRecord): Promise<GuestInfo>;
  interfaces(domain: DomainRecord): Promise<GuestInterface[]>;
  /** Number of file systems frozen (all, or the given mount points). */
  fsFreeze(domain: DomainRecord, mountpoints?: readonly string[]): Promise<number>;
  fsThaw(domain: DomainRecord): Promise<number>;
  setUserPassword(domain: DomainRecord, user: string, password: string, crypted: boolean): Promise<void>;
  getTime(domain: DomainRecord): Promise<GuestTime>;
  /** Sets the guest clock to `time`, or to the host's when absent; answers the guest's new time. */
  setTime(domain: DomainRecord, time?: GuestTime): Promise<GuestTime>;
}

/** qemu-monitor-command: one QMP command (or HMP line) the caller names, passed through as is. */
export interface MonitorCapability {
  command(domain: DomainRecord, command: QemuMonitorCommand): Promise<unknown>;
}

/** lxc-enter-namespace: a command in a container's namespaces with the agent's privileges. */
export interface NamespaceCapability {
  enter(domain: DomainRecord, request: LxcEnterCommand): Promise<ExecResult>;
}

/** virsh domcapabilities for the domain types of a driver. */
export interface DomainCapabilitiesCapability {
  describe(driver: DomainDriver, machine?: string): Promise<DomainCapabilities>;
}

/** Live figures a driver reports while migrating (query-migrate and storage mirror jobs). */
export interface MigrationStatus {
  phase: 'copying-storage' | 'copying-ram' | 'post-copy' | 'finishing';
  ramTransferredBytes: number;
  ramRemainingBytes: number;
  ramTotalBytes: number;
  iteration: number;
  dirtyPagesRate: number;
  diskProcessedBytes: number;
  diskTotalBytes: number;
  downtimeMs?: number;
  totalTimeMs?: number;
}

export interface IncomingOptions {
  /** Address the incoming QEMU listens on (the node's migration address). */
  listenHost: string;
  /** Directory with QEMU's x509 file names (ca-cert.pem, server-cert.pem, …) when the stream is encrypted. */
  tlsDir?: string;
  /** Storage copy: disk targets the destination creates empty and exports over NBD, with their sizes. */
  copyDisks?: Record<string, number>;
  /** post-copy needs the capability on both sides. */
  postCopy?: boolean;
}

export interface IncomingTarget {
  uri: string;
  nbd?: { host: string; port: number; exports: Record<string, string> };
  /** libvirt driver: the destination libvirtd's URI, which the source libvirtd connects to (peer-to-peer). */
  libvirtUri?: string;
}

export interface OutgoingOptions {
  target: IncomingTarget;
  live: boolean;
  /** The guest stays paused on the destination (the destination's finish is asked not to resume it as well). */
  paused?: boolean;
  maxDowntimeMs?: number;
  bandwidthMiBs?: number;
  autoConverge: boolean;
  postCopy: boolean;
  tlsDir?: string;
  tlsHostname?: string;
  signal: AbortSignal;
  onProgress(status: MigrationStatus): void;
  /** Called once the source switched to post-copy: the destination must resume now (it pulls pages on demand). */
  onPostcopy?(): Promise<void>;
}

/** Facts the destination checks before it spawns anything (compatibility check). */
export interface MigrationHostFacts {
  machines: string[];
  cpuModels: string[];
}

/**
 * Live migration, split like libvirt's protocol: the destination prepares an incoming process, the source streams
 * until the guest is paused there and complete here, then the destination finishes (resumes) and the source confirms
 * (ends its process) — or, on any failure, the destination aborts and the source resumes.
 */
export interface MigrationCapability {
  hostFacts(): Promise<MigrationHostFacts>;
  /** The CPU model the domain runs (or would run) with here: the destination must be able to give it the same. */
  cpuModel?(config: DomainConfig): Promise<string>;
  /** Virtual size of every disk by target (for a storage copy). */
  diskSizes(domain: DomainRecord): Promise<Record<string, number>>;
  prepareIncoming(domain: DomainRecord, options: IncomingOptions): Promise<{ run: RunState; target: IncomingTarget }>;
  finishIncoming(domain: DomainRecord, resume: boolean): Promise<RunState>;
  /** Ends an incoming process that will not get (or did not finish) its migration. */
  abortIncoming(domain: DomainRecord): Promise<RunState>;
  /** Streams the domain; resolves once the source is paused with everything sent. Cancels on `signal`. */
  migrateOut(domain: DomainRecord, options: OutgoingOptions): Promise<MigrationStatus>;
  /** After a successful finish: end the source process (shutoff/migrated). */
  confirmOutgoing(domain: DomainRecord): Promise<RunState>;
  /** After a failure: cancel anything still running and resume the guest here if it was running before. */
  recoverOutgoing(domain: DomainRecord, resume: boolean): Promise<RunState>;
}

/** What a driver made of a snapshot request; the agent keeps the metadata. */
export interface SnapshotTaken {
  state: DomainState;
  memory: boolean;
  disks: SnapshotDisk[];
  /** New disk paths (external snapshots move each disk to its overlay); the agent persists it as the definition. */
  config?: DomainConfig;
}

/** What a driver needs to know about the other snapshots while changing images. */
export interface SnapshotContext {
  /** Every snapshot of the domain (the one acted on included). */
  all: readonly DomainSnapshot[];
}

export interface SnapshotReverted {
  run: RunState;
  /** States the domain passed through on the way (e.g. shutoff when QEMU was restarted), applied before `run`. */
  through?: RunState[];
  config?: DomainConfig;
  /** Snapshot disk records rewritten by the change (an image merged into another), by snapshot name. */
  updated?: Record<string, SnapshotDisk[]>;
}

/** Internal (qcow2, with RAM while running) and external (overlay) snapshots. */
export interface SnapshotCapability {
  createSnapshot(domain: DomainRecord, request: { name: string; kind: SnapshotKind }, context: SnapshotContext): Promise<SnapshotTaken>;
  /** Returns the domain's state after the revert (the snapshot's for internal ones with RAM). */
  revertSnapshot(domain: DomainRecord, snapshot: DomainSnapshot, context: SnapshotContext): Promise<SnapshotReverted>;
  /** Removes the snapshot's data (merging external overlays); never the metadata, which the agent owns. */
  deleteSnapshot(domain: DomainRecord, snapshot: DomainSnapshot, context: SnapshotContext): Promise<Omit<SnapshotReverted, 'run'>>;
}

/** Save a running domain's memory state into a file and stop it; restore it later (libvirt save/restore). */
export interface SaveRestoreCapability {
  /** Writes the save file (header from save-file.ts, then the driver's state) and stops the domain: shutoff/saved. */
  save(domain: DomainRecord, path: string): Promise<RunState>;
  /** Starts the domain from a save file written by `save`; running/restored (or paused). */
  restore(domain: DomainRecord, path: string, options: { paused: boolean }): Promise<RunState>;
}

/** A disk as the driver plugs it: the agent resolved pool volumes to a path and chose the target. */
export type PluggedDisk = DomainDisk & { source: { path: string }; target: string };

/** Media for a cdrom drive: a resolved path and its format. */
export interface Media {
  path: string;
  format: 'qcow2' | 'raw';
}

/** Disk hotplug and cdrom media on a running domain (libvirt attach-disk/detach-disk/change-media --live). */
export interface DiskCapability {
  attachDisk(domain: DomainRecord, disk: PluggedDisk): Promise<void>;
  /** Waits for the guest to release the disk; throws OPERATION_TIMEOUT when it does not within `timeoutMs`. */
  detachDisk(domain: DomainRecord, target: string, options: WaitOptions): Promise<void>;
  /** Inserts `media` into the cdrom drive `target`, or ejects it when undefined. */
  changeMedia(domain: DomainRecord, target: string, media: Media | undefined): Promise<void>;
}

/** NICs of a running domain (libvirt's domif-setlink, attach-interface, detach-interface). */
export interface NicCapability {
  setLink(domain: DomainRecord, mac: string, up: boolean): Promise<void>;
  /** Plugs the NIC in live; the agent then adds it to the persistent config. */
  attachNic(domain: DomainRecord, nic: DomainNic & { mac: string }): Promise<void>;
  detachNic(domain: DomainRecord, mac: string, options: WaitOptions): Promise<void>;
}

/** A driver fronting another manager (libvirtd): the hypervisor it reports and the domain's definition in its own format. */
export interface NativeDefinitionCapability {
  /** libvirt's driver type in lower case (`qemu`, `xen`, `vz`, `test`, …). */
  readonly hypervisor: string;
  /** The domain's XML as libvirt holds it (read-only). */
  domainXml(domain: DomainRecord): Promise<string>;
  /** Every domain the manager holds. */
  listNative(): Promise<Array<{ uuid: string; name: string }>>;
  /** One of them (name or UUID) as a define request and its run state; the runtime marks libvirt's XML as the definition. */
  describeNative(id: string): Promise<{ post: DomainsPost & { uuid: string }; run: RunState }>;
}

/** vCPUs and balloon of a running domain (libvirt's setvcpus --live, setmem --live). */
export interface ResourceCapability {
  /** Hotplugs or unplugs vCPUs until `count` are plugged; an unplug waits for the guest to eject each one. */
  setVcpus(domain: DomainRecord, count: number, options: WaitOptions): Promise<void>;
  /** Sets the balloon target in MiB (the guest gives memory back or takes it at its own pace). */
  setMemory(domain: DomainRecord, mib: number): Promise<void>;
}

/** A block job to start on one disk: merge, pull or copy (the request bodies of the contract, resolved by the agent). */
export type BlockJobStart =
  | ({ kind: 'commit' } & BlockCommitRequest)
  | ({ kind: 'pull' } & BlockPullRequest)
  | ({ kind: 'copy' } & BlockCopyRequest);

export interface BlockJobWatch {
  signal: AbortSignal;
  onProgress(bytesProcessed: number, bytesTotal: number): void;
}

/** A started block job; `finished` resolves once it ended, with the image the disk runs on when the driver knows it (moved by a pivot). */
export interface BlockJobRun {
  finished: Promise<{ activePath?: string }>;
}

/** libvirt's block jobs and live disk tuning (blockcommit, blockpull, blockcopy, blockjob, blockresize, blkdeviotune). */
export interface BlockJobCapability {
  /** Resolves once the hypervisor accepted the job (bad input throws here); `signal` cancels it. */
  start(domain: DomainRecord, target: string, job: BlockJobStart, watch: BlockJobWatch): Promise<BlockJobRun>;
  /** The job running on the disk, undefined when none. */
  info(domain: DomainRecord, target: string): Promise<BlockJobInfo | undefined>;
  /** Cancels the disk's job, or pivots a ready copy or active commit. */
  abort(domain: DomainRecord, target: string, pivot: boolean): Promise<void>;
  resize(domain: DomainRecord, target: string, sizeBytes: number): Promise<void>;
  /** Sets the limits (absent: 0, none) and answers those in force. */
  setIoTune(domain: DomainRecord, target: string, tune: BlockIoTune): Promise<BlockIoTune>;
  /** After an agent restart: the block jobs still on the domain's disks (`targets`), each followed again to its end (no pivot of its own). */
  adoptJobs?(domain: DomainRecord, targets: readonly string[], watch: (target: string) => BlockJobWatch): Promise<AdoptedBlockJob[]>;
}

/** A block job found running after an agent restart. */
export interface AdoptedBlockJob extends BlockJobRun {
  target: string;
  type: BlockJobInfo['type'];
}

/**
 * One interface for every hypervisor. Lifecycle calls are mandatory; optional capability groups
 * (console, stats, …) are absent when unsupported and the agent answers OPERATION_UNSUPPORTED.
 * The agent serialises calls per domain (one job at a time) and owns the persisted definition.
 */
export interface HypervisorDriver {
  readonly name: string;
  /** The domain `driver` values this driver runs (the qemu driver runs both `qemu` and `kvm`). */
  readonly domainTypes: readonly DomainDriver[];
  init(context: DriverContext): Promise<void>;
  probe(): Promise<DriverInfo>;
  /** Throws INVALID_ARG or OPERATION_UNSUPPORTED for a config this driver cannot run. */
  validate(config: DomainConfig): void;
  /** After an agent restart: find the domain's real state (re-attach to a live process, or report it gone). */
  adopt(domain: DomainRecord): Promise<RunState>;
  start(domain: DomainRecord, options: StartOptions): Promise<RunState>;
  shutdown(domain: DomainRecord, options: WaitOptions): Promise<RunState>;
  destroy(domain: DomainRecord): Promise<RunState>;
  reboot(domain: DomainRecord, options: WaitOptions): Promise<RunState>;
  reset(domain: DomainRecord): Promise<RunState>;
  suspend(domain: DomainRecord): Promise<RunState>;
  resume(domain: DomainRecord): Promise<RunState>;
  /** Removes the driver's files for a shut-off domain being undefined. */
  undefine(domain: DomainRecord, options?: UndefineOptions): Promise<void>;
  /** The agent is stopping: let go of monitors and watchers, never of the domains themselves. */
  close(): Promise<void>;
  readonly console?: ConsoleCapability;
  readonly graphics?: GraphicsCapability;
  readonly stats?: StatsCapability;
  readonly exec?: ExecCapability;
  readonly migration?: MigrationCapability;
  readonly snapshots?: SnapshotCapability;
  readonly saveRestore?: SaveRestoreCapability;
  readonly disks?: DiskCapability;
  readonly nics?: NicCapability;
  readonly guestAgent?: GuestAgentCapability;
  readonly native?: NativeDefinitionCapability;
  readonly monitor?: MonitorCapability;
  readonly namespaces?: NamespaceCapability;
  readonly domainCapabilities?: DomainCapabilitiesCapability;
  readonly resources?: ResourceCapability;
  readonly blockJobs?: BlockJobCapability;
}

/** The optional capability groups of a driver: every optional member of HypervisorDriver. */
export type CapabilitySlot = { [K in keyof HypervisorDriver]-?: undefined extends HypervisorDriver[K] ? K : never }[keyof HypervisorDriver];

/** The name `probe()` reports for each filled slot; a new slot without a name here does not compile. */
export const CapabilityNames = {
  console: 'console',
  graphics: 'graphics',
  stats: 'stats',
  exec: 'exec',
  migration: 'migration',
  snapshots: 'snapshots',
  saveRestore: 'save-restore',
  disks: 'disks',
  nics: 'nics',
  guestAgent: 'guest-agent',
  native: 'native-xml',
  monitor: 'qemu-monitor',
  namespaces: 'lxc-enter',
  domainCapabilities: 'domain-capabilities',
  resources: 'resources',
  blockJobs: 'block-jobs',
} as const satisfies Record<CapabilitySlot, string>;

/** A driver's capabilities as the slots it fills say (so probe() cannot drift from them), then driver facts such as `accel:kvm`. */
export function driverCapabilities(driver: HypervisorDriver, extra: readonly string[] = []): string[] {
  const slots = Object.keys(CapabilityNames) as CapabilitySlot[];
  return ['lifecycle', ...slots.filter((slot) => driver[slot] !== undefined).map((slot) => CapabilityNames[slot]), ...extra];
}

import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { isActive, VirtError, type DomainCapabilities, type DomainConfig, type DomainEventDetails, type DomainNic, type DomainState, type DomainStats, type DriverInfo, type StateReason } from '@virtbus/api-contract';
import type {
  ConsoleCapability,
  ConsoleSession,
  DiskCapability,
  ExecCapability,
  GuestAgentCapability,
  DomainRecord,
  GraphicsCapability,
  MigrationCapability,
  MonitorCapability,
  DomainCapabilitiesCapability,
  DriverContext,
  HypervisorDriver,
  NicCapability,
  ResourceCapability,
  RunState,
  SaveRestoreCapability,
  SnapshotCapability,
  StartOptions,
  StatsCapability,
  UndefineOptions,
  WaitOptions,
} from '../driver.js';
import { writeFileAtomic } from '../util/atomic.js';
import { cpuModelFor, efiFiles, isEfi, nvramPath, OVMF_DIR, validateMachine, type EfiFiles } from './machine.js';
import { driverCapabilities } from '../driver.js';
import { findExecutable } from '../util/executables.js';
import { inNetns } from '../util/netns.js';
import { attachTaps, hotplugTapNic, planTapNics, qemuNicIds, runningTapNics, tapStats, unplugNic, type TapNic } from './nics.js';
import { QemuGuestAgent } from './qga/guest-agent.js';
import { accelFor, buildCommandLine, diskTargets, macFor, qemuPaths, type QemuPaths } from './command-line.js';
import { requireHugepages, wantsHugepages } from './hugepages.js';
import { startSwtpm, stopSwtpm, swtpmBinary, tpmStateDir } from './tpm.js';
import { ConsoleHub } from './console.js';
import { probeQemuCapabilities } from './capabilities.js';
import { QemuGraphics } from './graphics.js';
import { QemuMigration } from './migration.js';
import { QemuDiskHotplug } from './disk-hotplug.js';
import { QemuResources } from './resources.js';
import { QemuBlockJobs } from './block-jobs.js';
import { QemuSnapshots } from './snapshots.js';
import { parseRuntime, QemuInstance, type ExitInfo, type QemuRuntime } from './instance.js';
import { CLOCK_TICKS_PER_SECOND, isProcessAlive, readProcStat, readTaskStat, signalProcess, spawnDetached, waitForProcessExit } from './process.js';
import { domainEventsOf, GUEST_AGENT_CHANNEL, Qmp, QmpClosedError, QmpCommandError, QmpTimeoutError, type QemuRunStatus, type QmpEvent, type QmpEventData, type QmpStatusInfo } from './qmp/index.js';

export interface QemuDriverOptions {
  /** Path of qemu-system-x86_64; found on PATH when absent. */
  binary?: string;
  /** CPU model for `kvm` domains; by default `host`, or `qemu64` where `-cpu host` does not start (paravirtual KVM). */
  kvmCpuModel?: string;
  /** CPU model for `qemu` (TCG) domains. */
  tcgCpuModel?: string;
  /** How long start waits for QEMU's QMP socket. */
  startTimeoutMs?: number;
  /** Timeout of one QMP command issued by a lifecycle call. */
  commandTimeoutMs?: number;
  /** The KVM device; a test may point it elsewhere. */
  kvmDevice?: string;
  /** Where Debian's ovmf package puts OVMF (efi domains). */
  ovmfDir?: string;
  /** Path of swtpm (domains with devices.tpm); found on PATH when absent. */
  swtpmBinary?: string;
}

/** Extra option a caller may pass to shutdown: destroy when the guest ignores the power button. */
export interface ShutdownOptions extends WaitOptions {
  force?: boolean;
}

/** The record says a QEMU runs: active, or crashed (a panicked guest stays paused in its QEMU, panic action `pause`). */
const claimsProcess = (state: DomainState) => isActive(state) || state === 'crashed';
const MAX_UNIX_SOCKET_PATH = 107;
const execFileAsync = promisify(execFile);
/** The balloon device every domain gets (command-line.ts `id=balloon0`) and how often its guest driver reports memory stats. */
const BALLOON_QOM_PATH = '/machine/peripheral/balloon0';
const BALLOON_POLL_SECONDS = 2;

/** QMP failures in driver terms: no answer → OPERATION_TIMEOUT, anything else → OPERATION_FAILED. */
function qmpFailure(error: unknown, what: string): VirtError {
  if (error instanceof VirtError) return error;
  if (error instanceof QmpTimeoutError) return new VirtError('OPERATION_TIMEOUT', `${what}: QEMU did not answer in time`, { cause: error });
  if (error instanceof QmpClosedError) return new VirtError('OPERATION_FAILED', `${what}: QEMU went away`, { cause: error });
  if (error instanceof QmpCommandError) return new VirtError('OPERATION_FAILED', `${what}: ${error.desc}`, { cause: error });
  return new VirtError('OPERATION_FAILED', `${what}: ${(error as Error)?.message ?? String(error)}`, { cause: error });
}

/** query-status → libvirt state and reason for a live QEMU. */
export function stateFromStatus(status: QemuRunStatus): { state: DomainState; reason: StateReason } {
  switch (status) {
    case 'running':
      return { state: 'running', reason: 'unknown' };
    case 'paused':
      return { state: 'paused', reason: 'user' };
    case 'prelaunch':
      return { state: 'paused', reason: 'starting_up' };
    case 'io-error':
      return { state: 'paused', reason: 'ioerror' };
    case 'watchdog':
      return { state: 'paused', reason: 'watchdog' };
    case 'inmigrate':
    case 'postmigrate':
    case 'finish-migrate':
      return { state: 'paused', reason: 'migration' };
    case 'save-vm':
      return { state: 'paused', reason: 'save' };
    case 'restore-vm':
      return { state: 'paused', reason: 'from_snapshot' };
    case 'shutdown':
      return { state: 'paused', reason: 'shutting_down' };
    case 'guest-panicked':
      return { state: 'crashed', reason: 'panicked' };
    case 'suspended':
      return { state: 'pmsuspended', reason: 'unknown' };
    default:
      return { state: 'paused', reason: 'unknown' };
  }
}

/** Runs the `qemu` (TCG) and `kvm` domain types on QEMU, one detached process per domain, driven over QMP. */
export class QemuDriver implements HypervisorDriver, ConsoleCapability, StatsCapability, NicCapability {
  readonly name = 'qemu';
  readonly domainTypes = ['qemu', 'kvm'] as const;
  readonly console: ConsoleCapability = this;
  readonly stats: StatsCapability = this;
  readonly nics: NicCapability = this;
  readonly migration: MigrationCapability = new QemuMigration({
    live: (domain) => this.live(domain),
    busy: (instance, work) => this.busy(instance, work),
    spawn: (domain, extraArgs) => this.start(domain, { paused: true }, extraArgs),
    end: (instance, reason) => this.destroyInstance(instance, reason),
    binary: () => this.binary(),
    cpuModel: async (config) => (config.driver === 'kvm' ? (await this.kvmCpuModel()).model : (this.options.tcgCpuModel ?? 'max')),
    log: () => this.log(),
  });
  readonly graphics: GraphicsCapability = new QemuGraphics({ live: (domain) => this.live(domain), paths: (uuid) => this.paths(uuid) });
  readonly disks: DiskCapability = new QemuDiskHotplug((domain) => this.live(domain).qmp!);
  private readonly agent = new QemuGuestAgent({
    socketOf: (domain) => {
      this.live(domain);
      return this.paths(domain.config.uuid).qgaSocket;
    },
  });
  readonly guestAgent: GuestAgentCapability = this.agent;
  /** Commands in the guest run through its guest agent (guest-exec). */
  readonly exec: ExecCapability = this.agent;
  private readonly capabilityProbes = new Map<string, Promise<DomainCapabilities>>();
  readonly domainCapabilities: DomainCapabilitiesCapability = {
    describe: (driver, machine) => {
      const binary = this.binary();
      if (!binary) return Promise.reject(new VirtError('OPERATION_UNSUPPORTED', 'qemu-system-x86_64 is not installed'));
      if (driver !== 'qemu' && driver !== 'kvm') return Promise.reject(new VirtError('OPERATION_UNSUPPORTED', `the qemu driver does not run ${driver} domains`));
      if (driver === 'kvm' && !this.kvmUsable(false).usable) return Promise.reject(new VirtError('OPERATION_UNSUPPORTED', `kvm domains cannot run here: ${this.kvmUsable(false).detail}`));
      const key = `${driver}/${machine ?? ''}`;
      let probe = this.capabilityProbes.get(key);
      if (!probe) {
        probe = probeQemuCapabilities(binary, driver, machine);
        this.capabilityProbes.set(key, probe);
        probe.catch(() => this.capabilityProbes.delete(key));
      }
      return probe;
    },
  };
  readonly monitor: MonitorCapability = {
    command: async (domain, { command, arguments: args, hmp }) => {
      const qmp = this.live(domain).qmp!;
      try {
        return hmp ? await qmp.misc.humanMonitorCommand(command) : await qmp.misc.passthrough(command, args);
      } catch (error) {
        throw qmpFailure(error, `QMP ${hmp ? 'human-monitor-command' : command} on ${domain.config.name}`);
      }
    },
  };
  readonly resources: ResourceCapability = new QemuResources((domain) => this.live(domain).qmp!);
  readonly blockJobs: QemuBlockJobs = new QemuBlockJobs((domain) => this.live(domain).qmp!);
  private readonly snapshotSupport = new QemuSnapshots({
    instance: (domain) => this.instances.get(domain.config.uuid),
    busy: (instance, work) => this.busy(instance, work),
    spawn: (domain, paused, extraArgs) => this.start(domain, { paused }, extraArgs),
    end: (instance, reason) => this.destroyInstance(instance, reason),
    log: () => this.log(),
  });
  readonly snapshots: SnapshotCapability = this.snapshotSupport;
  readonly saveRestore: SaveRestoreCapability = this.snapshotSupport;
  private context?: DriverContext;
  private readonly instances = new Map<string, QemuInstance>();
  /** QEMU processes whose balloon already polls the guest for memory stats. */
  private readonly balloonPolling = new WeakSet<QemuInstance>();
  private kvmCpuModelPromise?: Promise<{ model: string; note?: string }>;
  private kvmUsableCache?: { usable: boolean; detail: string };

  constructor(private readonly options: QemuDriverOptions = {}) {}

  async init(context: DriverContext): Promise<void> {
    this.context = context;
    await mkdir(context.stateDir, { recursive: true });
  }

  async probe(): Promise<DriverInfo> {
    const binary = this.binary();
    if (!binary) {
      return { name: this.name, domainTypes: [...this.domainTypes], available: false, detail: 'qemu-system-x86_64 is not installed', capabilities: [] };
    }
    let version = 'QEMU';
    try {
      const { stdout } = await execFileAsync(binary, ['--version'], { timeout: 10_000 });
      version = stdout.split('\n')[0]?.trim() ?? version;
    } catch (error) {
      return { name: this.name, domainTypes: [...this.domainTypes], available: false, detail: `${binary} --version failed: ${(error as Error).message}`, capabilities: [] };
    }
    const kvm = this.kvmUsable(true);
    const accels = ['accel:tcg'];
    let kvmDetail = kvm.detail;
    if (kvm.usable) {
      accels.push('accel:kvm');
      const cpu = await this.kvmCpuModel();
      kvmDetail = `KVM usable (kvm domains use -cpu ${cpu.model}${cpu.note ? `; ${cpu.note}` : ''})`;
    }
    return { name: this.name, domainTypes: [...this.domainTypes], available: true, detail: `${version} at ${binary}; ${kvmDetail}`, capabilities: driverCapabilities(this, accels) };
  }

  validate(config: DomainConfig): void {
    if (config.driver !== 'qemu' && config.driver !== 'kvm') throw new VirtError('OPERATION_UNSUPPORTED', `the qemu driver cannot run ${config.driver} domains`);
    if (config.driver === 'kvm') {
      const kvm = this.kvmUsable(false);
      if (!kvm.usable) throw new VirtError('OPERATION_UNSUPPORTED', `kvm domains cannot run on this node: ${kvm.detail}`);
    }
    if (config.container) throw new VirtError('INVALID_ARG', 'container settings are for lxc domains');
    if (!config.os.kernel && (config.os.initrd || config.os.cmdline)) throw new VirtError('INVALID_ARG', 'os.initrd and os.cmdline need os.kernel');
    for (const disk of config.disks) {
      if (disk.device === 'cdrom' && (disk.bus ?? 'virtio') === 'virtio') throw new VirtError('INVALID_ARG', 'a cdrom needs the ide or sata bus');
    }
    diskTargets(config.disks);
    for (const nic of config.nics) {
      if ((nic.type === 'network' || nic.type === 'bridge') && !nic.source) throw new VirtError('INVALID_ARG', `a ${nic.type} NIC needs a source`);
    }
    validateMachine(config);
    swtpmBinary(config, this.options.swtpmBinary);
    cpuModelFor(config, accelFor(config), 'max');
    if (isEfi(config)) {
      const efi = efiFiles(config, this.ovmfDir(), this.nvramDir());
      if (!existsSync(efi.code) || !existsSync(efi.varsTemplate)) throw new VirtError('OPERATION_UNSUPPORTED', `efi firmware needs the ovmf package (${efi.code} is missing)`);
    }
  }

  async adopt(domain: DomainRecord): Promise<RunState> {
    const { config } = domain;
    const existing = this.instances.get(config.uuid);
    if (existing) return this.currentState(existing, domain);
    const runtime = parseRuntime(domain.runtime);
    if (!runtime) {
      if (claimsProcess(domain.state)) return { state: 'shutoff', reason: 'unknown', runtime: null };
      return { state: domain.state, reason: domain.reason };
    }
    const paths = this.paths(config.uuid);
    if (!isProcessAlive(runtime.pid, runtime.startTime)) {
      const reason = await this.reasonForDeathWhileAway(runtime);
      this.log().info({ uuid: config.uuid, qemuPid: runtime.pid, reason }, 'QEMU exited while the agent was away');
      await this.removeRuntimeFiles(paths);
      return { state: 'shutoff', reason, runtime: null };
    }
    const instance = new QemuInstance(config, runtime, undefined, (inst, info) => this.onExit(inst, info));
    try {
      const qmp = await Qmp.connect(runtime.qmpSocket, { timeoutMs: 5_000, commandTimeoutMs: this.commandTimeoutMs() });
      instance.attachQmp(qmp, (inst, event) => this.onEvent(inst, event));
    } catch (error) {
      // Alive but unreachable: keep watching the pid; destroy still works by signal.
      this.log().error({ err: error, uuid: config.uuid, qemuPid: runtime.pid }, 'QEMU is alive but its QMP socket does not answer');
      this.register(instance);
      const state = claimsProcess(domain.state) ? domain.state : 'running';
      return { state, reason: state === domain.state ? domain.reason : 'unknown' };
    }
    if (runtime.consoleSocket && runtime.consoleLog) {
      const hub = new ConsoleHub(runtime.consoleSocket, runtime.consoleLog, this.log());
      try {
        await hub.attach(false);
        instance.console = hub;
      } catch (error) {
        this.log().warn({ err: error, uuid: config.uuid }, 'could not reattach to the serial console');
      }
    }
    this.register(instance);
    let status: QemuRunStatus;
    try {
      ({ status } = await instance.qmp!.lifecycle.queryStatus());
    } catch (error) {
      if (instance.hasExited) return { state: 'shutoff', reason: this.exitReason(instance), runtime: null };
      throw qmpFailure(error, `adopting ${config.name}`);
    }
    if (status === 'shutdown') {
      // The guest powered off while we were away (-no-shutdown kept QEMU): finish the job now.
      instance.shutdownEvent = { guest: true, reason: 'guest-shutdown' };
      instance.expectedExit = 'shutdown';
      await instance.qmp!.lifecycle.quit().catch(() => undefined);
      if (!(await this.awaitExit(instance, 5_000))) return this.destroyInstance(instance).then(() => ({ state: 'shutoff', reason: 'shutdown', runtime: null }));
      return { state: 'shutoff', reason: 'shutdown', runtime: null };
    }
    return this.keepReason(stateFromStatus(status), domain);
  }

  /** `extraArgs` go after the domain's own (a migration's `-incoming defer`). */
  async start(domain: DomainRecord, options: StartOptions, extraArgs: readonly string[] = []): Promise<RunState> {
    const { config } = domain;
    this.require(domain, ['shutoff', 'crashed', 'nostate'], 'start');
    if (this.instances.has(config.uuid)) throw new VirtError('OPERATION_INVALID', `domain ${config.name} still has a QEMU process; destroy it first`);
    this.validate(config);
    const binary = this.binary();
    if (!binary) throw new VirtError('OPERATION_UNSUPPORTED', 'qemu-system-x86_64 is not installed');
    const accel = accelFor(config);
    const cpuModel = cpuModelFor(config, accel, accel === 'kvm' ? (await this.kvmCpuModel()).model : (this.options.tcgCpuModel ?? 'max'));
    const efi = isEfi(config) ? await this.ensureNvram(config) : undefined;
    const paths = this.paths(config.uuid);
    if (Buffer.byteLength(paths.consoleSocket) > MAX_UNIX_SOCKET_PATH) {
      throw new VirtError('OPERATION_FAILED', `state directory path too long for unix sockets: ${paths.consoleSocket}`);
    }
    await mkdir(paths.runDir, { recursive: true, mode: 0o700 });
    // independent of each other: one thread-pool round each instead of one after another; /proc/meminfo only for hugepages
    await Promise.all([this.removeRuntimeFiles(paths), rm(paths.consoleLog, { force: true })]);
    if (wantsHugepages(config)) requireHugepages(config, await readFile('/proc/meminfo', 'utf8'));
    const swtpm = swtpmBinary(config, this.options.swtpmBinary);
    if (swtpm) await startSwtpm(swtpm, tpmStateDir(this.tpmDir(), config.uuid), paths);
    const tapNics = planTapNics(config, this.context?.networks);
    const netns = tapNics.length > 0 ? this.context?.networks?.netns : undefined;
    const args = [...buildCommandLine(config, paths, { accel, cpuModel, ...(efi ? { efi } : {}), taps: new Map(tapNics.map((nic) => [nic.index, nic.tap])) }), ...extraArgs];

    // taps live in the node's network namespace with their bridges, so QEMU must open them there
    const spawnCommand = inNetns(netns, binary, args);
    const child = spawnDetached(spawnCommand.command, spawnCommand.args, paths.qemuLog);
    const spawned = await new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined));
      child.once('error', (error) => resolve(error));
    });
    if (spawned || child.pid === undefined) {
      await this.removeRuntimeFiles(paths);
      throw new VirtError('OPERATION_FAILED', `could not run ${binary}: ${spawned?.message}`, { cause: spawned });
    }
    const pid = child.pid;
    const procStat = await readProcStat(pid);
    const runtime: QemuRuntime = {
      pid,
      startTime: procStat?.startTime ?? -1,
      qmpSocket: paths.qmpSocket,
      qemuLog: paths.qemuLog,
      accel,
      startedAt: new Date().toISOString(),
      ...(config.console.type === 'serial' ? { consoleSocket: paths.consoleSocket, consoleLog: paths.consoleLog } : {}),
      ...(tapNics.length > 0 ? { nics: tapNics } : {}),
      ...(netns ? { netns } : {}),
    };
    const instance = new QemuInstance(config, runtime, child, (inst, info) => this.onExit(inst, info));
    this.log().debug({ uuid: config.uuid, qemuPid: pid, args }, 'QEMU spawned');
    try {
      if (!procStat) throw new VirtError('OPERATION_FAILED', 'QEMU exited at once');
      // the runtime's durable write overlaps QEMU's own start-up (QMP answers only once QEMU is initialised); both end before `cont`
      const [connected, saved] = await Promise.allSettled([this.connectQmp(instance), this.context?.saveRuntime(config.uuid, runtime)]);
      if (saved.status === 'rejected') {
        if (connected.status === 'fulfilled') connected.value.close();
        throw saved.reason;
      }
      if (connected.status === 'rejected') throw connected.reason;
      instance.attachQmp(connected.value, (inst, event) => this.onEvent(inst, event));
      if (runtime.consoleSocket && runtime.consoleLog) {
        const hub = new ConsoleHub(runtime.consoleSocket, runtime.consoleLog, this.log());
        await hub.attach(true);
        instance.console = hub;
      }
      await attachTaps(netns, tapNics);
      // the password goes over QMP, never on the command line (ps shows it); QEMU keeps it while it runs, across agent restarts
      if (config.graphics?.password) await instance.qmp!.ui.setVncPassword(config.graphics.password);
      if (config.currentMemory !== undefined && config.currentMemory < config.memory) await instance.qmp!.machine.balloon(config.currentMemory * 1024 * 1024);
      if (!options.paused) await this.busy(instance, () => instance.qmp!.lifecycle.cont());
    } catch (error) {
      await this.abortStart(instance, paths);
      const log = await readFile(paths.qemuLog, 'utf8').catch(() => '');
      const detail = log.trim().split('\n').slice(-5).join(' | ');
      const message = error instanceof Error ? error.message : String(error);
      throw new VirtError('OPERATION_FAILED', `QEMU failed to start domain ${config.name}: ${detail || message}`, { cause: error });
    }
    this.register(instance);
    return options.paused ? { state: 'paused', reason: 'user', runtime } : { state: 'running', reason: 'booted', runtime };
  }

  async shutdown(domain: DomainRecord, options: ShutdownOptions): Promise<RunState> {
    this.require(domain, ['running', 'blocked', 'paused', 'shutdown', 'pmsuspended'], 'shut down');
    const instance = this.live(domain);
    return this.busy(instance, async () => {
      try {
        await instance.qmp!.lifecycle.systemPowerdown();
      } catch (error) {
        throw qmpFailure(error, `shutdown of ${domain.config.name}`);
      }
      if (options.timeoutMs <= 0) return { state: domain.state, reason: domain.reason };
      instance.expectedExit = 'shutdown';
      if (await this.awaitExit(instance, options.timeoutMs)) return { state: 'shutoff', reason: this.exitReason(instance), runtime: null };
      instance.expectedExit = undefined;
      if (options.force) return this.destroyInstance(instance);
      throw new VirtError('OPERATION_TIMEOUT', `domain ${domain.config.name} did not shut down within ${options.timeoutMs} ms`);
    });
  }

  async destroy(domain: DomainRecord): Promise<RunState> {
    this.require(domain, ['running', 'blocked', 'paused', 'shutdown', 'crashed', 'pmsuspended'], 'destroy');
    const instance = this.instances.get(domain.config.uuid);
    if (!instance) {
      const runtime = parseRuntime(domain.runtime);
      if (runtime && isProcessAlive(runtime.pid, runtime.startTime)) {
        signalProcess(runtime.pid, runtime.startTime, 'SIGKILL');
        await waitForProcessExit(runtime.pid, runtime.startTime, 5_000);
      }
      if (runtime) await this.removeRuntimeFiles(this.paths(domain.config.uuid));
      return { state: 'shutoff', reason: 'destroyed', runtime: null };
    }
    return this.busy(instance, () => this.destroyInstance(instance));
  }

  async reboot(domain: DomainRecord, options: WaitOptions): Promise<RunState> {
    this.require(domain, ['running', 'blocked'], 'reboot');
    const instance = this.live(domain);
    return this.busy(instance, async () => {
      let poweredOff!: () => void;
      const guestOff = new Promise<void>((resolve) => (poweredOff = resolve));
      instance.onGuestPoweroff = poweredOff;
      try {
        await instance.qmp!.lifecycle.systemPowerdown();
        const outcome = await Promise.race([
          guestOff.then(() => 'off' as const),
          instance.exited.then(() => 'exited' as const),
          new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), options.timeoutMs).unref()),
        ]);
        if (outcome === 'exited') throw new VirtError('OPERATION_FAILED', `domain ${domain.config.name} stopped during reboot`);
        if (outcome === 'timeout') throw new VirtError('OPERATION_TIMEOUT', `domain ${domain.config.name} did not react to the power button within ${options.timeoutMs} ms`);
        // libvirt's "fake reboot": the guest powered off, QEMU stayed (-no-shutdown); reset and run it again.
        await instance.qmp!.lifecycle.systemReset();
        instance.shutdownEvent = undefined;
        await instance.qmp!.lifecycle.cont();
        return { state: 'running', reason: 'booted' };
      } catch (error) {
        throw qmpFailure(error, `reboot of ${domain.config.name}`);
      } finally {
        instance.onGuestPoweroff = undefined;
      }
    });
  }

  async reset(domain: DomainRecord): Promise<RunState> {
    return this.lifecycleCommand(domain, ['running', 'blocked', 'paused'], 'reset', (qmp) => qmp.lifecycle.systemReset(), { state: domain.state, reason: domain.reason });
  }

  async suspend(domain: DomainRecord): Promise<RunState> {
    return this.lifecycleCommand(domain, ['running', 'blocked'], 'suspend', (qmp) => qmp.lifecycle.stop(), { state: 'paused', reason: 'user' });
  }

  async resume(domain: DomainRecord): Promise<RunState> {
    return this.lifecycleCommand(domain, ['paused'], 'resume', (qmp) => qmp.lifecycle.cont(), { state: 'running', reason: 'unpaused' });
  }

  /** One QMP command on a domain in one of `states`, under its busy flag; the domain is then in `after`. */
  private async lifecycleCommand(domain: DomainRecord, states: readonly DomainState[], verb: string, command: (qmp: Qmp) => Promise<unknown>, after: RunState): Promise<RunState> {
    this.require(domain, states, verb);
    const instance = this.live(domain);
    return this.busy(instance, async () => {
      try {
        await command(instance.qmp!);
      } catch (error) {
        throw qmpFailure(error, `${verb} of ${domain.config.name}`);
      }
      return after;
    });
  }

  async undefine(domain: DomainRecord, options: UndefineOptions = {}): Promise<void> {
    if (this.instances.has(domain.config.uuid)) throw new VirtError('OPERATION_INVALID', `domain ${domain.config.name} is still running`);
    await rm(this.paths(domain.config.uuid).runDir, { recursive: true, force: true });
    if (!options.keepNvram) await rm(nvramPath(this.nvramDir(), domain.config.uuid), { force: true });
    await rm(tpmStateDir(this.tpmDir(), domain.config.uuid), { recursive: true, force: true });
  }

  private tpmDir(): string {
    return this.context?.tpmDir ?? join(this.context?.stateDir ?? '.', 'tpm');
  }

  private ovmfDir(): string {
    return this.options.ovmfDir ?? OVMF_DIR;
  }

  private nvramDir(): string {
    return this.context?.nvramDir ?? join(this.context?.stateDir ?? '.', 'nvram');
  }

  /** An efi domain's NVRAM outlives its QEMU: copied from OVMF's template at first start, kept until undefine. */
  private async ensureNvram(config: DomainConfig): Promise<EfiFiles> {
    const efi = efiFiles(config, this.ovmfDir(), this.nvramDir());
    if (existsSync(efi.nvram)) return efi;
    let template: Buffer;
    try {
      template = await readFile(efi.varsTemplate);
    } catch (error) {
      throw new VirtError('OPERATION_UNSUPPORTED', `efi firmware needs the ovmf package (${efi.varsTemplate}: ${(error as Error).message})`, { cause: error });
    }
    await mkdir(dirname(efi.nvram), { recursive: true, mode: 0o700 });
    await writeFileAtomic(efi.nvram, template);
    return efi;
  }

  async close(): Promise<void> {
    for (const instance of this.instances.values()) instance.detach();
    this.instances.clear();
  }

  async openConsole(domain: DomainRecord): Promise<ConsoleSession> {
    const instance = this.instances.get(domain.config.uuid);
    if (!instance || instance.hasExited) throw new VirtError('OPERATION_INVALID', `domain ${domain.config.name} is not running`);
    if (!instance.console) throw new VirtError('OPERATION_UNSUPPORTED', `domain ${domain.config.name} has no serial console`);
    return instance.console.session();
  }

  async domainStats(domain: DomainRecord, options: { deadlineMs: number }): Promise<DomainStats> {
    const { config } = domain;
    const stats: DomainStats = { uuid: config.uuid, name: config.name, state: domain.state, reason: domain.reason, collectedAt: new Date().toISOString() };
    const instance = this.instances.get(config.uuid);
    if (!instance || instance.hasExited) return stats;
    const deadline = Date.now() + options.deadlineMs;
    const remaining = () => ({ timeoutMs: Math.max(1, deadline - Date.now()) });
    const { pid } = instance.runtime;
    const tickNs = 1e9 / CLOCK_TICKS_PER_SECOND;
    const procStat = await readProcStat(pid);
    if (procStat) {
      stats.cpu = {
        timeNs: (procStat.utimeTicks + procStat.stimeTicks) * tickNs,
        userNs: procStat.utimeTicks * tickNs,
        systemNs: procStat.stimeTicks * tickNs,
      };
    }
    const memory: NonNullable<DomainStats['memory']> = { maximumBytes: config.memory * 1024 * 1024 };
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(status);
    if (rss) memory.rssBytes = Number(rss[1]) * 1024;
    stats.memory = memory;
    const qmp = instance.qmp;
    if (!qmp || qmp.closed) return stats;
    try {
      const [cpus, blocks, balloon] = await Promise.all([
        qmp.lifecycle.queryCpusFast(remaining()),
        qmp.block.queryBlockstats(remaining()),
        qmp.lifecycle.queryBalloon(remaining()),
      ]);
      const list = await Promise.all(
        cpus.map(async (cpu) => {
          const threadStat = await readTaskStat(pid, cpu['thread-id']);
          return { id: cpu['cpu-index'], state: 'running' as const, ...(threadStat ? { timeNs: (threadStat.utimeTicks + threadStat.stimeTicks) * tickNs } : {}) };
        }),
      );
      stats.vcpu = { current: cpus.length, maximum: config.vcpus, list };
      if (balloon) {
        memory.currentBytes = balloon.actual;
        Object.assign(memory, await this.balloonStats(instance, qmp, remaining));
      }
      const targets = diskTargets(config.disks);
      // Our format nodes are named fmt-<target> (command-line.ts); the qdev of a virtio disk is a QOM path.
      stats.block = blocks.flatMap((entry) => {
        const index = targets.findIndex((target) => entry['node-name'] === `fmt-${target}` || entry.qdev === target);
        if (index < 0) return [];
        const source = config.disks[index]?.source;
        return [
          {
            name: targets[index] as string,
            ...(source && 'path' in source ? { path: source.path } : {}),
            readRequests: entry.stats.rd_operations,
            readBytes: entry.stats.rd_bytes,
            readTimeNs: entry.stats.rd_total_time_ns,
            writeRequests: entry.stats.wr_operations,
            writeBytes: entry.stats.wr_bytes,
            writeTimeNs: entry.stats.wr_total_time_ns,
            flushRequests: entry.stats.flush_operations,
          },
        ];
      });
    } catch (error) {
      throw qmpFailure(error, `stats of ${config.name}`);
    }
    const taps = runningTapNics(instance.runtime);
    if (taps.nics.length > 0) stats.net = await tapStats(taps.netns, taps.nics).catch(() => []);
    const user = await this.userNicStats(domain, instance, deadline);
    if (user.length > 0) stats.net = [...(stats.net ?? []), ...user];
    return stats;
  }

  /**
   * `user` (slirp) NICs have no host device to count on and QEMU 7.2's QMP no netdev counters: the guest agent's
   * guest-network-get-interfaces statistics (by MAC; swapped into the host view taps report, rx = what the guest sent)
   * while qemu-ga is connected, named by the QEMU device id (nic<index>); none without a connected agent or past the deadline.
   */
  private async userNicStats(domain: DomainRecord, instance: QemuInstance, deadline: number): Promise<NonNullable<DomainStats['net']>> {
    const { config } = domain;
    const user = config.nics.flatMap((nic, index) => (nic.type === 'user' ? [{ name: `nic${index}`, mac: (nic.mac ?? macFor(config.uuid, index)).toLowerCase() }] : []));
    if (user.length === 0 || !instance.guestAgentOpen || domain.state !== 'running') return [];
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), Math.max(1, deadline - Date.now()))));
    const call = this.agent.interfaceCounters(domain, Math.max(1, deadline - Date.now()));
    call.catch(() => undefined);
    const counters = await Promise.race([call.catch(() => undefined), late]).finally(() => clearTimeout(timer));
    if (!counters) return [];
    return user.flatMap(({ name, mac }) => {
      const counted = counters.get(mac);
      if (!counted) return [];
      return [
        {
          name,
          rxBytes: counted['tx-bytes'],
          rxPackets: counted['tx-packets'],
          rxErrors: counted['tx-errs'],
          rxDrops: counted['tx-dropped'],
          txBytes: counted['rx-bytes'],
          txPackets: counted['rx-packets'],
          txErrors: counted['rx-errs'],
          txDrops: counted['rx-dropped'],
        },
      ];
    });
  }

  /**
   * The guest's own memory figures from the balloon driver (libvirt's usable/unused/available): polling is switched on at
   * the first stats call of a QEMU process, and a guest without the driver just reports none.
   */
  private async balloonStats(instance: QemuInstance, qmp: Qmp, remaining: () => { timeoutMs: number }): Promise<Partial<NonNullable<DomainStats['memory']>>> {
    if (!this.balloonPolling.has(instance)) {
      await qmp.lifecycle.setBalloonStatsPolling(BALLOON_QOM_PATH, BALLOON_POLL_SECONDS, remaining());
      this.balloonPolling.add(instance);
    }
    const { stats } = await qmp.lifecycle.balloonGuestStats(BALLOON_QOM_PATH, remaining());
    const bytes = (value: number | undefined) => (value !== undefined && value >= 0 && Number.isSafeInteger(value) ? value : undefined);
    const usable = bytes(stats['stat-available-memory']);
    const unused = bytes(stats['stat-free-memory']);
    const available = bytes(stats['stat-total-memory']);
    return { ...(usable !== undefined ? { usableBytes: usable } : {}), ...(unused !== undefined ? { unusedBytes: unused } : {}), ...(available !== undefined ? { availableBytes: available } : {}) };
  }

  async setLink(domain: DomainRecord, mac: string, up: boolean): Promise<void> {
    const instance = this.live(domain);
    const ids = this.nicIds(instance, domain, mac);
    try {
      await instance.qmp!.net.setLink(ids.deviceId, up);
    } catch (error) {
      throw qmpFailure(error, `set_link on ${domain.config.name}`);
    }
  }

  async attachNic(domain: DomainRecord, nic: DomainNic & { mac: string }): Promise<void> {
    const instance = this.live(domain);
    if (nic.type !== 'network' && nic.type !== 'bridge') throw new VirtError('OPERATION_UNSUPPORTED', `hotplug of ${nic.type} NICs is not supported`);
    const resolver = this.context?.networks;
    if (!resolver) throw new VirtError('OPERATION_UNSUPPORTED', 'this agent manages no networks');
    const current = runningTapNics(instance.runtime);
    if (current.nics.some((existing) => existing.mac === nic.mac) || domain.config.nics.some((existing) => existing.mac === nic.mac)) {
      throw new VirtError('OPERATION_INVALID', `domain ${domain.config.name} already has a NIC with MAC ${nic.mac}`);
    }
    const netns = current.netns;
    // QEMU opens the tap in its own namespace, which must be the bridges' one
    if (resolver.netns !== netns) throw new VirtError('OPERATION_UNSUPPORTED', `domain ${domain.config.name} runs outside the network namespace; restart it with a network NIC`);
    let plan: TapNic;
    try {
      plan = await hotplugTapNic(instance.qmp!, netns, domain.config.uuid, nic, domain.config.nics.length, resolver.resolveNic(nic));
    } catch (error) {
      throw qmpFailure(error, `NIC hotplug on ${domain.config.name}`);
    }
    instance.runtime.nics = [...current.nics, plan];
    await this.context?.saveRuntime(domain.config.uuid, instance.runtime);
  }

  async detachNic(domain: DomainRecord, mac: string, options: WaitOptions): Promise<void> {
    const instance = this.live(domain);
    const ids = this.nicIds(instance, domain, mac);
    try {
      await unplugNic(instance.qmp!, ids, options.timeoutMs);
    } catch (error) {
      throw qmpFailure(error, `NIC unplug on ${domain.config.name}`);
    }
    instance.runtime.nics = runningTapNics(instance.runtime).nics.filter((nic) => nic.mac !== mac);
    await this.context?.saveRuntime(domain.config.uuid, instance.runtime);
  }

  private nicIds(instance: QemuInstance, domain: DomainRecord, mac: string): { deviceId: string; netdevId: string } {
    const tap = runningTapNics(instance.runtime).nics.find((nic) => nic.mac === mac);
    if (tap) return qemuNicIds(tap);
    const index = domain.config.nics.findIndex((nic) => nic.mac === mac);
    if (index < 0 || domain.config.nics[index]?.type === 'none') throw new VirtError('INVALID_ARG', `domain ${domain.config.name} has no NIC with MAC ${mac}`);
    return qemuNicIds({ index });
  }

  /** QEMU's own view (query-status) of a running domain, for diagnostics and tests. */
  async queryStatus(domain: DomainRecord): Promise<QmpStatusInfo> {
    const instance = this.live(domain);
    try {
      return await instance.qmp!.lifecycle.queryStatus();
    } catch (error) {
      throw qmpFailure(error, `query-status of ${domain.config.name}`);
    }
  }

  /** PIDs of the QEMU processes this driver watches, by domain uuid (tests and diagnostics). */
  processes(): Map<string, number> {
    return new Map([...this.instances].map(([uuid, instance]) => [uuid, instance.runtime.pid]));
  }

  private async destroyInstance(instance: QemuInstance, reason: 'destroyed' | 'migrated' | 'saved' | 'from_snapshot' = 'destroyed'): Promise<RunState> {
    instance.expectedExit = reason;
    const { pid, startTime } = instance.runtime;
    if (instance.qmp && !instance.qmp.closed) {
      await instance.qmp.lifecycle.quit({ timeoutMs: 1_000 }).catch(() => undefined);
      if (await this.awaitExit(instance, 2_000)) return { state: 'shutoff', reason, runtime: null };
    }
    signalProcess(pid, startTime, 'SIGKILL');
    if (!(await this.awaitExit(instance, 10_000))) throw new VirtError('OPERATION_FAILED', `QEMU process ${pid} survived SIGKILL`);
    return { state: 'shutoff', reason, runtime: null };
  }

  /** Waits for the QEMU process to be gone (exit event, QMP EOF or /proc); false on timeout. */
  private async awaitExit(instance: QemuInstance, timeoutMs: number): Promise<boolean> {
    if (instance.hasExited) return true;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    try {
      return await Promise.race([instance.exited.then(() => true), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async connectQmp(instance: QemuInstance): Promise<Qmp> {
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 30_000);
    for (;;) {
      if (instance.hasExited) throw new VirtError('OPERATION_FAILED', `QEMU exited (${JSON.stringify(instance.exitInfo)})`);
      try {
        return await Qmp.connect(instance.runtime.qmpSocket, { timeoutMs: Math.max(1_000, deadline - Date.now()), commandTimeoutMs: this.commandTimeoutMs() });
      } catch (error) {
        if (Date.now() >= deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  }

  private async abortStart(instance: QemuInstance, paths: QemuPaths): Promise<void> {
    instance.expectedExit = 'destroyed';
    signalProcess(instance.runtime.pid, instance.runtime.startTime, 'SIGKILL');
    await this.awaitExit(instance, 5_000);
    instance.detach();
    await this.removeRuntimeFiles(paths);
    await this.context?.saveRuntime(instance.uuid, null).catch(() => undefined);
  }

  private register(instance: QemuInstance): void {
    instance.registered = true;
    this.instances.set(instance.uuid, instance);
  }

  private async busy<T>(instance: QemuInstance, work: () => Promise<T>): Promise<T> {
    instance.busy++;
    try {
      return await work();
    } finally {
      instance.busy--;
    }
  }

  /** A BLOCK_JOB event of a commit this driver started on the active layer says ACTIVE_COMMIT, as libvirt's does. */
  private retyped(uuid: string, details: DomainEventDetails): DomainEventDetails {
    return details.jobType === 'COMMIT' && details.device && this.blockJobs.typeOf(uuid, details.device, 'commit') === 'ACTIVE_COMMIT' ? { ...details, jobType: 'ACTIVE_COMMIT' } : details;
  }

  private onEvent(instance: QemuInstance, event: QmpEvent): void {
    const uuid = instance.uuid;
    this.log().debug({ uuid, event: event.event, data: event.data }, 'QMP event');
    if (instance.registered && !instance.hasExited) for (const mapped of domainEventsOf(event)) this.context?.domainEvent?.(uuid, mapped.event, this.retyped(uuid, mapped.details));
    switch (event.event) {
      case 'VSERPORT_CHANGE':
        void this.reportAgentChannel(instance, event.data as unknown as QmpEventData['VSERPORT_CHANGE']);
        return;
      case 'SHUTDOWN': {
        const guest = event.data.guest === true;
        instance.shutdownEvent = { guest, reason: String(event.data.reason ?? 'unknown') };
        if (!guest) return;
        if (instance.onGuestPoweroff) return instance.onGuestPoweroff();
        // The guest powered off and -no-shutdown kept QEMU paused: end the process, the exit reports shutoff/shutdown.
        void instance.qmp?.lifecycle.quit().catch(() => signalProcess(instance.runtime.pid, instance.runtime.startTime, 'SIGTERM'));
        return;
      }
      case 'STOP':
        if (instance.shutdownEvent || instance.busy > 0) return;
        void this.reportLiveState(instance);
        return;
      case 'RESUME':
        if (instance.busy > 0) return;
        this.observe(instance, { state: 'running', reason: 'unpaused' });
        return;
      case 'GUEST_PANICKED':
        instance.panicked = true;
        if (event.data.action === 'pause') this.observe(instance, { state: 'crashed', reason: 'panicked' });
        return;
      case 'SUSPEND':
        this.observe(instance, { state: 'pmsuspended', reason: 'unknown' });
        return;
      case 'WAKEUP':
        this.observe(instance, { state: 'running', reason: 'wakeup' });
        return;
    }
  }

  /** AGENT_LIFECYCLE: the port that opened or closed is the guest agent's when its channel name says so. */
  private async reportAgentChannel(instance: QemuInstance, change: QmpEventData['VSERPORT_CHANGE']): Promise<void> {
    try {
      const name = await instance.qmp!.misc.qomGet(change.id, 'name');
      if (name !== GUEST_AGENT_CHANNEL) return;
      instance.guestAgentOpen = change.open;
      if (!instance.registered) return;
      this.context?.domainEvent?.(instance.uuid, 'AGENT_LIFECYCLE', { state: change.open ? 'CONNECTED' : 'DISCONNECTED', reason: 'channel' });
    } catch (error) {
      this.log().debug({ err: error, uuid: instance.uuid, port: change.id }, 'qom-get of a virtio-serial port failed');
    }
  }

  private async reportLiveState(instance: QemuInstance): Promise<void> {
    try {
      const { status } = await instance.qmp!.lifecycle.queryStatus();
      if (instance.shutdownEvent || instance.busy > 0 || status === 'running') return;
      this.observe(instance, stateFromStatus(status));
    } catch (error) {
      this.log().debug({ err: error, uuid: instance.uuid }, 'query-status after STOP failed');
    }
  }

  private observe(instance: QemuInstance, change: RunState): void {
    if (!instance.registered || instance.hasExited) return;
    this.context?.observedState(instance.uuid, change);
  }

  private exitReason(instance: QemuInstance): StateReason {
    if (instance.expectedExit === 'destroyed') return 'destroyed';
    if (instance.expectedExit === 'migrated') return 'migrated';
    if (instance.expectedExit === 'saved') return 'saved';
    if (instance.expectedExit === 'from_snapshot') return 'from_snapshot';
    if (instance.shutdownEvent && !instance.panicked) return 'shutdown';
    return 'crashed';
  }

  private onExit(instance: QemuInstance, info: ExitInfo): void {
    if (this.instances.get(instance.uuid) === instance) this.instances.delete(instance.uuid);
    if (!instance.registered) return;
    const reason = this.exitReason(instance);
    const detail = { uuid: instance.uuid, qemuPid: instance.runtime.pid, exitCode: info.code, signal: info.signal, reason };
    if (reason === 'crashed') this.log().warn(detail, 'QEMU exited unexpectedly');
    else this.log().info(detail, 'QEMU exited');
    void this.removeRuntimeFiles(this.paths(instance.uuid));
    this.context?.observedState(instance.uuid, { state: 'shutoff', reason, runtime: null });
  }

  private async currentState(instance: QemuInstance, domain: DomainRecord): Promise<RunState> {
    if (!instance.qmp) return { state: domain.state, reason: domain.reason };
    try {
      return this.keepReason(stateFromStatus((await instance.qmp.lifecycle.queryStatus()).status), domain);
    } catch (error) {
      throw qmpFailure(error, `query-status of ${domain.config.name}`);
    }
  }

  /** Keeps the persisted reason when the state did not change (running/booted stays booted). */
  private keepReason(live: { state: DomainState; reason: StateReason }, domain: DomainRecord): RunState {
    return live.state === domain.state ? { state: domain.state, reason: domain.reason } : live;
  }

  /** QEMU died with nobody watching: a host signal (SIGTERM…) counts as destroyed, anything else as a crash. */
  private async reasonForDeathWhileAway(runtime: QemuRuntime): Promise<StateReason> {
    const log = await readFile(runtime.qemuLog, 'utf8').catch(() => '');
    return /terminating on signal \d+/.test(log) ? 'destroyed' : 'crashed';
  }

  private async removeRuntimeFiles(paths: QemuPaths): Promise<void> {
    // the swtpm ends with its QEMU (--terminate); this also ends one whose QEMU never connected
    await stopSwtpm(paths);
    await Promise.all([paths.qmpSocket, paths.consoleSocket, paths.vncSocket, paths.qgaSocket, paths.pidFile].map((path) => rm(path, { force: true })));
  }

  private live(domain: DomainRecord): QemuInstance {
    const instance = this.instances.get(domain.config.uuid);
    if (!instance || instance.hasExited) throw new VirtError('OPERATION_INVALID', `domain ${domain.config.name} has no running QEMU process`);
    if (!instance.qmp || instance.qmp.closed) throw new VirtError('OPERATION_FAILED', `domain ${domain.config.name}: QMP is not connected`);
    return instance;
  }

  private require(domain: DomainRecord, states: readonly DomainState[], verb: string): void {
    if (!states.includes(domain.state)) throw new VirtError('OPERATION_INVALID', `cannot ${verb} domain ${domain.config.name}: it is ${domain.state}`);
  }

  private paths(uuid: string): QemuPaths {
    if (!this.context) throw new VirtError('INTERNAL', 'qemu driver used before init()');
    return qemuPaths(join(this.context.stateDir, uuid.toLowerCase()));
  }

  private binary(): string | undefined {
    return this.options.binary ?? findExecutable('qemu-system-x86_64');
  }

  private commandTimeoutMs(): number {
    return this.options.commandTimeoutMs ?? 10_000;
  }

  private log() {
    if (!this.context) throw new VirtError('INTERNAL', 'qemu driver used before init()');
    return this.context.logger;
  }

  /** /dev/kvm is usable when we can open it read-write (what QEMU does). */
  private kvmUsable(refresh: boolean): { usable: boolean; detail: string } {
    if (this.kvmUsableCache && !refresh) return this.kvmUsableCache;
    const device = this.options.kvmDevice ?? '/dev/kvm';
    try {
      closeSync(openSync(device, 'r+'));
      this.kvmUsableCache = { usable: true, detail: `${device} is usable` };
    } catch (error) {
      this.kvmUsableCache = { usable: false, detail: `${device} is not usable (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); qemu (TCG) domains only` };
    }
    return this.kvmUsableCache;
  }

  /** `-cpu host` is best on real KVM but aborts on some paravirtual KVMs; try it once, else fall back to qemu64. */
  private kvmCpuModel(): Promise<{ model: string; note?: string }> {
    if (this.options.kvmCpuModel) return Promise.resolve({ model: this.options.kvmCpuModel });
    this.kvmCpuModelPromise ??= this.tryKvmCpu('host').then((works) => (works ? { model: 'host' } : { model: 'qemu64', note: '-cpu host does not start here' }));
    return this.kvmCpuModelPromise;
  }

  private tryKvmCpu(model: string): Promise<boolean> {
    const binary = this.binary();
    if (!binary) return Promise.resolve(false);
    const args = ['-accel', 'kvm', '-cpu', model, '-machine', 'pc', '-m', '16', '-nodefaults', '-no-user-config', '-display', 'none', '-S', '-qmp', 'stdio'];
    return new Promise((resolve) => {
      const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'ignore'] });
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('"QMP"') && !output.includes('"return"')) {
          child.stdin.write('{"execute":"qmp_capabilities"}\n{"execute":"query-status"}\n{"execute":"quit"}\n');
          output += '"return"';
        }
      });
      child.on('error', () => resolve(false));
      // a QEMU that aborts at once closes its QMP pipe: our answer then fails with EPIPE, which must not end the agent
      child.stdin.on('error', () => undefined);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve(code === 0);
      });
    });
  }
}

import { closeSync, existsSync, mkdirSync, openSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuTopology, validateMachine } from '../qemu/machine.js';
import { VirtError, type DomainConfig, type DomainStats, type DriverInfo } from '@virtbus/api-contract';
import type {
  BlockJobCapability,
  ConsoleCapability,
  ConsoleSession,
  DiskCapability,
  ResourceCapability,
  DomainRecord,
  DriverContext,
  GraphicsCapability,
  GraphicsSession,
  GuestAgentCapability,
  HypervisorDriver,
  Media,
  PluggedDisk,
  RunState,
  SaveRestoreCapability,
  SnapshotCapability,
  StatsCapability,
  WaitOptions,
} from '../driver.js';
import { driverCapabilities } from '../driver.js';
import { diskTargets } from '../qemu/command-line.js';
import { TestConsole } from './test-console.js';
import { TestGuestAgent } from './test-guest-agent.js';
import { TestBlockJobs } from './test-block-jobs.js';
import { TestScreen } from './test-screen.js';
import { TestSnapshots } from './test-snapshots.js';

export interface TestDriverOptions {
  /** Simulated hypervisor latency per call, so callers can exercise locking and timeouts. */
  latencyMs?: number;
}

type Mark = 'running' | 'paused';

/**
 * libvirt's test:///default for virtbus: every API, no hypervisor. State transitions follow libvirt's
 * rules. A simulated guest leaves an empty `<uuid>.running|paused` file under the driver's state dir (its "process",
 * like QEMU's pid): a restarted agent finds its guests by them, including a destroy whose record the agent could not
 * write (removing a file needs no room on a full disk).
 */
export class TestDriver implements HypervisorDriver, ConsoleCapability, StatsCapability, DiskCapability, GraphicsCapability, ResourceCapability {
  readonly name = 'test';
  readonly domainTypes = ['test'] as const;
  readonly console: ConsoleCapability = this;
  readonly graphics: GraphicsCapability = this;
  readonly stats: StatsCapability = this;
  private readonly snapshotSupport = new TestSnapshots({
    booted: (domain, banner) => {
      this.mark(domain, 'running');
      this.consoleOf(domain).append(`${banner}\r\nGUEST-READY\r\n`);
      this.runningSince.set(domain.config.uuid, Date.now());
    },
    stopped: (domain) => this.stopped(domain),
  });
  readonly snapshots: SnapshotCapability = this.snapshotSupport;
  readonly saveRestore: SaveRestoreCapability = this.snapshotSupport;
  readonly disks: DiskCapability = this;
  private readonly agent = new TestGuestAgent();
  readonly guestAgent: GuestAgentCapability = this.agent;
  readonly resources: ResourceCapability = this;
  private readonly blockJobSupport = new TestBlockJobs();
  readonly blockJobs: BlockJobCapability = this.blockJobSupport;
  /** vCPUs and balloon target set live (setvcpus/setmem --live), until the next start. */
  private readonly liveResources = new Map<string, { vcpus: number; memory: number }>();
  /** Disks plugged into each running domain by target: whether it is a cdrom and what media it holds. */
  private readonly plugged = new Map<string, Map<string, { cdrom: boolean; media?: string }>>();
  private readonly runningSince = new Map<string, number>();
  private readonly latencyMs: number;
  private readonly consoles = new Map<string, TestConsole>();
  private readonly screens = new Map<string, TestScreen>();
  private runDir: string | undefined;
  /** The state dir predates the marks: guests of the agent before are taken as recorded (and marked). */
  private unmarked = false;
  /** The marks in runDir, read once at init and kept with every change: two stats per domain made a 10,000-domain start slow. */
  private readonly marks = new Map<string, Mark>();

  constructor(options: TestDriverOptions = {}) {
    this.latencyMs = options.latencyMs ?? 0;
  }

  async init(context: DriverContext): Promise<void> {
    this.blockJobSupport.init(context);
    const dir = join(context.stateDir, 'running');
    this.unmarked = !existsSync(dir);
    mkdirSync(dir, { recursive: true });
    this.marks.clear();
    for (const file of readdirSync(dir)) {
      const dot = file.lastIndexOf('.');
      const mark = file.slice(dot + 1);
      // both marks left behind: running wins, as the per-file check did
      if (dot > 0 && (mark === 'running' || (mark === 'paused' && !this.marks.has(file.slice(0, dot))))) this.marks.set(file.slice(0, dot), mark);
    }
    this.runDir = dir;
  }

  async probe(): Promise<DriverInfo> {
    return {
      name: this.name,
      domainTypes: [...this.domainTypes],
      available: true,
      detail: 'simulated hypervisor, no real guests',
      capabilities: driverCapabilities(this),
    };
  }

  validate(config: DomainConfig): void {
    if (config.driver !== 'test') throw new VirtError('OPERATION_UNSUPPORTED', `the test driver cannot run ${config.driver} domains`);
    // firmware, CPU topology, balloon and NUMA cells are simulated: the same rules as a QEMU definition
    validateMachine(config);
  }

  async adopt(domain: DomainRecord): Promise<RunState> {
    const active = domain.state === 'running' || domain.state === 'paused';
    if (!this.runDir || (this.unmarked && active)) {
      if (active) this.mark(domain, domain.state as Mark);
      return { state: domain.state, reason: domain.reason };
    }
    const marked = this.markOf(domain);
    if (marked === undefined) return active ? { state: 'shutoff', reason: 'unknown' } : { state: domain.state, reason: domain.reason };
    return { state: marked, reason: marked === domain.state ? domain.reason : 'unknown' };
  }

  async start(domain: DomainRecord, options: { paused: boolean }): Promise<RunState> {
    this.liveResources.delete(domain.config.uuid);
    this.require(domain, ['shutoff', 'crashed', 'nostate'], 'start');
    await this.work();
    this.consoleOf(domain).append(`virtbus test domain ${domain.config.name} booted\r\nGUEST-READY\r\n`);
    this.mark(domain, options.paused ? 'paused' : 'running');
    this.runningSince.set(domain.config.uuid, Date.now());
    this.plugged.set(domain.config.uuid, this.bootDisks(domain));
    // the VNC server starts with the guest and its password then, like QEMU's
    if (domain.config.graphics?.type === 'vnc') this.screens.set(domain.config.uuid, new TestScreen(domain.config.name, domain.config.uuid, domain.config.graphics.password));
    return options.paused ? { state: 'paused', reason: 'user' } : { state: 'running', reason: 'booted' };
  }

  async shutdown(domain: DomainRecord, _options: { timeoutMs: number }): Promise<RunState> {
    this.require(domain, ['running', 'blocked', 'paused', 'shutdown'], 'shut down');
    await this.work();
    this.stopped(domain);
    return { state: 'shutoff', reason: 'shutdown' };
  }

  async destroy(domain: DomainRecord): Promise<RunState> {
    this.require(domain, ['running', 'blocked', 'paused', 'shutdown', 'crashed', 'pmsuspended'], 'destroy');
    await this.work();
    this.stopped(domain);
    return { state: 'shutoff', reason: 'destroyed' };
  }

  async reboot(domain: DomainRecord, _options: { timeoutMs: number }): Promise<RunState> {
    this.require(domain, ['running', 'blocked'], 'reboot');
    await this.work();
    return { state: 'running', reason: 'booted' };
  }

  async reset(domain: DomainRecord): Promise<RunState> {
    this.require(domain, ['running', 'blocked', 'paused'], 'reset');
    await this.work();
    return { state: domain.state, reason: domain.reason };
  }

  async suspend(domain: DomainRecord): Promise<RunState> {
    this.require(domain, ['running', 'blocked'], 'suspend');
    await this.work();
    this.mark(domain, 'paused');
    return { state: 'paused', reason: 'user' };
  }

  async resume(domain: DomainRecord): Promise<RunState> {
    this.require(domain, ['paused'], 'resume');
    await this.work();
    this.mark(domain, 'running');
    return { state: 'running', reason: 'unpaused' };
  }

  async undefine(domain: DomainRecord): Promise<void> {
    this.consoles.delete(domain.config.uuid);
  }

  async attachDisk(domain: DomainRecord, disk: PluggedDisk): Promise<void> {
    const disks = this.pluggedInto(domain);
    if ((disk.bus ?? 'virtio') !== 'virtio' || disk.device === 'cdrom') {
      throw new VirtError('OPERATION_UNSUPPORTED', 'only virtio disks can be hotplugged (cdroms: change their media instead)');
    }
    if (disks.has(disk.target)) throw new VirtError('OPERATION_INVALID', `domain ${domain.config.name} already has a disk ${disk.target}`);
    await this.work();
    disks.set(disk.target, { cdrom: false, media: disk.source.path });
  }

  async detachDisk(domain: DomainRecord, target: string, _options: WaitOptions): Promise<void> {
    const disks = this.pluggedInto(domain);
    if (!disks.has(target)) throw new VirtError('INVALID_ARG', `domain ${domain.config.name} has no disk ${target}`);
    await this.work();
    disks.delete(target);
  }

  async changeMedia(domain: DomainRecord, target: string, media: Media | undefined): Promise<void> {
    const drive = this.pluggedInto(domain).get(target);
    if (!drive?.cdrom) throw new VirtError('INVALID_ARG', `domain ${domain.config.name} has no cdrom drive ${target}`);
    await this.work();
    if (media) drive.media = media.path;
    else delete drive.media;
  }

  async close(): Promise<void> {
    for (const console of this.consoles.values()) console.end();
    this.consoles.clear();
  }

  async openConsole(domain: DomainRecord): Promise<ConsoleSession> {
    if (domain.state !== 'running' && domain.state !== 'paused') throw new VirtError('OPERATION_INVALID', 'domain is not running');
    return this.consoleOf(domain).session();
  }

  private liveOf(domain: DomainRecord): { vcpus: number; memory: number } {
    return this.liveResources.get(domain.config.uuid) ?? { vcpus: domain.config.vcpus, memory: domain.config.currentMemory ?? domain.config.memory };
  }

  /** Simulated hotplug: the count must fit the topology's maximum, like QEMU's slots. */
  async setVcpus(domain: DomainRecord, count: number): Promise<void> {
    const { maxVcpus } = cpuTopology(domain.config);
    if (count > maxVcpus) throw new VirtError('INVALID_ARG', `domain ${domain.config.name} may have at most ${maxVcpus} vCPUs (cpu.maxVcpus)`);
    this.liveResources.set(domain.config.uuid, { ...this.liveOf(domain), vcpus: count });
  }

  async setMemory(domain: DomainRecord, mib: number): Promise<void> {
    if (mib > domain.config.memory) throw new VirtError('INVALID_ARG', `${mib} MiB exceeds the maximum memory of ${domain.config.name} (${domain.config.memory} MiB)`);
    this.liveResources.set(domain.config.uuid, { ...this.liveOf(domain), memory: mib });
  }

  /** Simulated counters that grow while the domain runs, so monitoring has something real to plot. */
  async domainStats(domain: DomainRecord, _options: { deadlineMs: number }): Promise<DomainStats> {
    const { config } = domain;
    const since = this.runningSince.get(config.uuid) ?? Date.now();
    this.runningSince.set(config.uuid, since);
    const elapsedNs = (Date.now() - since) * 1_000_000;
    const memoryBytes = config.memory * 1024 * 1024;
    const live = this.liveOf(domain);
    return {
      uuid: config.uuid,
      name: config.name,
      state: domain.state,
      reason: domain.reason,
      collectedAt: new Date().toISOString(),
      cpu: { timeNs: Math.round(elapsedNs / 10) },
      memory: { maximumBytes: memoryBytes, currentBytes: live.memory * 1024 * 1024, rssBytes: Math.round(memoryBytes / 2) },
      vcpu: {
        current: live.vcpus,
        maximum: cpuTopology(config).maxVcpus,
        list: Array.from({ length: live.vcpus }, (_, id) => ({ id, state: 'running' as const, timeNs: Math.round(elapsedNs / 10 / live.vcpus) })),
      },
      block: config.disks.map((_, index) => ({
        name: `vd${String.fromCharCode(97 + index)}`,
        readRequests: 0,
        readBytes: 0,
        readTimeNs: 0,
        writeRequests: 0,
        writeBytes: 0,
        writeTimeNs: 0,
      })),
      net: config.nics.map((_, index) => ({
        name: `vnet${index}`,
        rxBytes: 0,
        rxPackets: 0,
        rxErrors: 0,
        rxDrops: 0,
        txBytes: 0,
        txPackets: 0,
        txErrors: 0,
        txDrops: 0,
      })),
    };
  }

  async openGraphics(domain: DomainRecord): Promise<GraphicsSession> {
    return this.screenOf(domain).session();
  }

  async screenshot(domain: DomainRecord): Promise<Buffer> {
    return this.screenOf(domain).png();
  }

  async sendKey(domain: DomainRecord, keys: readonly string[], _holdTimeMs: number): Promise<void> {
    this.screenOf(domain).pressKeys(keys);
  }

  async setPassword(domain: DomainRecord, password: string): Promise<void> {
    if (domain.config.graphics?.type === 'vnc') this.screenOf(domain).setPassword(password);
  }

  /** The screen of a running domain defined with one (the agent checks the definition first; this guards direct callers). */
  private screenOf(domain: DomainRecord): TestScreen {
    if (domain.state !== 'running' && domain.state !== 'paused') throw new VirtError('OPERATION_INVALID', 'domain is not running');
    if (domain.config.graphics?.type !== 'vnc') throw new VirtError('OPERATION_INVALID', `domain ${domain.config.name} runs without graphics (define it with graphics.type vnc)`);
    let screen = this.screens.get(domain.config.uuid);
    if (!screen) {
      screen = new TestScreen(domain.config.name, domain.config.uuid, domain.config.graphics.password);
      this.screens.set(domain.config.uuid, screen);
    }
    return screen;
  }

  private consoleOf(domain: DomainRecord): TestConsole {
    let console = this.consoles.get(domain.config.uuid);
    if (!console) {
      console = new TestConsole();
      this.consoles.set(domain.config.uuid, console);
    }
    return console;
  }

  private stopped(domain: DomainRecord): void {
    this.mark(domain, undefined);
    this.consoles.get(domain.config.uuid)?.end();
    this.consoles.delete(domain.config.uuid);
    this.screens.get(domain.config.uuid)?.end();
    this.screens.delete(domain.config.uuid);
    this.runningSince.delete(domain.config.uuid);
    this.plugged.delete(domain.config.uuid);
    this.agent.forget(domain.config.uuid);
  }

  /** Moves the guest's mark to `state` (rename: no room needed), creates it, or removes it (undefined). */
  private mark(domain: DomainRecord, state: Mark | undefined): void {
    const dir = this.runDir;
    if (!dir) return;
    const path = (mark: Mark) => join(dir, `${domain.config.uuid}.${mark}`);
    const current = this.markOf(domain);
    if (current === state) return;
    try {
      if (state === undefined) rmSync(path(current!), { force: true });
      else if (current) renameSync(path(current), path(state));
      else closeSync(openSync(path(state), 'a', 0o600));
      if (state === undefined) this.marks.delete(domain.config.uuid);
      else this.marks.set(domain.config.uuid, state);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new VirtError(code === 'ENOSPC' || code === 'EDQUOT' ? 'STORAGE_FULL' : 'OPERATION_FAILED', `test driver: cannot mark ${domain.config.name} ${state ?? 'stopped'}: ${(error as Error).message}`, { cause: error });
    }
  }

  private markOf(domain: DomainRecord): Mark | undefined {
    const dir = this.runDir;
    if (!dir) return undefined;
    return this.marks.get(domain.config.uuid);
  }

  private pluggedInto(domain: DomainRecord): Map<string, { cdrom: boolean; media?: string }> {
    if (domain.state !== 'running' && domain.state !== 'paused') throw new VirtError('OPERATION_INVALID', `domain ${domain.config.name} is not running`);
    // A domain still running from before an agent restart has its boot disks.
    let disks = this.plugged.get(domain.config.uuid);
    if (!disks) this.plugged.set(domain.config.uuid, (disks = this.bootDisks(domain)));
    return disks;
  }

  private bootDisks(domain: DomainRecord): Map<string, { cdrom: boolean; media?: string }> {
    const targets = diskTargets(domain.config.disks);
    return new Map(domain.config.disks.map((disk, index) => [targets[index]!, { cdrom: disk.device === 'cdrom', ...('path' in disk.source ? { media: disk.source.path } : {}) }]));
  }

  private require(domain: DomainRecord, states: readonly string[], verb: string): void {
    if (!states.includes(domain.state)) {
      throw new VirtError('OPERATION_INVALID', `cannot ${verb} domain ${domain.config.name}: it is ${domain.state}`);
    }
  }

  private async work(): Promise<void> {
    if (this.latencyMs > 0) await sleep(this.latencyMs);
  }
}

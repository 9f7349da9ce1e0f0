import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { vmOnlyFields } from '../qemu/machine.js';
import { isActive, VirtError, type DomainConfig, type DomainStats, type DriverInfo, type ExecRequest, type ExecResult, type LxcNamespace } from '@virtbus/api-contract';
import type {
  ConsoleCapability,
  ConsoleSession,
  DomainRecord,
  DomainRuntime,
  DriverContext,
  ExecCapability,
  NamespaceCapability,
  HypervisorDriver,
  RunState,
  StatsCapability,
} from '../driver.js';
import { driverCapabilities } from '../driver.js';
import { findExecutable } from '../util/executables.js';
import { writeFileAtomic } from '../util/atomic.js';
import { detectCgroupVersion, parseNetDev, processCgroupDirectories, pruneLxcPivots, readCgroupStats, type CgroupVersion } from './cgroups.js';
import { LxcConsole } from './lxc-console.js';
import { consoleLogPath, DEFAULT_INIT, lxcLogPath, renderLxcConfig, vethHostName, type LxcNic } from './lxc-config.js';
import { initFlavorOf, inspectRootfs, lxcRootfsPath } from './rootfs.js';
import { descendants, domainStateOf, parentPid, parseLxcInfo, processStartTime, run, type LxcInfo, type RunResult } from './lxc-tools.js';

const MIB = 1024 * 1024;
const POLL_MS = 100;
const TOOL_TIMEOUT_MS = 30_000;
const MONITOR_EXIT_WAIT_MS = 3_000;
const DEFAULT_EXEC_TIMEOUT_S = 60;

export interface LxcDriverOptions {
  /** Directory holding lxc-start and friends; default: the first on PATH, /usr/bin, /usr/sbin. */
  binDir?: string;
  /** How often each running container's init is checked for exits the driver did not cause (ms). */
  watchIntervalMs?: number;
  /** The bridge of a virtbus network, for NICs of type `network`; without it such NICs are refused. */
  networkBridge?: (network: string) => string | undefined;
}

/** What the agent persists for a running container: enough to find it again after a restart. */
interface LxcRuntime {
  initPid: number;
  initStartTime: number;
  /** The container's cgroup directories, to clear LXC's leftovers after it stops. */
  cgroupDirs: string[];
  /** lxc-start's monitor (init's parent): its exit is when LXC's cgroup cleanup is over. */
  monitorPid?: number;
  monitorStartTime?: number;
}

interface Watch {
  uuid: string;
  runtime: LxcRuntime;
  timer: NodeJS.Timeout;
  /** A lifecycle call owns the container: the watcher stays quiet. */
  busy: number;
  checking: boolean;
}

function findTool(name: string, binDir?: string): string | undefined {
  return binDir ? findExecutable(name, [binDir]) : findExecutable(name);
}

function asRuntime(runtime: DomainRuntime | undefined): LxcRuntime | undefined {
  if (!runtime || typeof runtime.initPid !== 'number' || typeof runtime.initStartTime !== 'number') return undefined;
  const cgroupDirs = Array.isArray(runtime.cgroupDirs) ? runtime.cgroupDirs.filter((dir): dir is string => typeof dir === 'string') : [];
  const monitor =
    typeof runtime.monitorPid === 'number' && typeof runtime.monitorStartTime === 'number' ? { monitorPid: runtime.monitorPid, monitorStartTime: runtime.monitorStartTime } : {};
  return { initPid: runtime.initPid, initStartTime: runtime.initStartTime, cgroupDirs, ...monitor };
}

function toolError(what: string, result: RunResult, logTail = ''): VirtError {
  const detail = result.stderr.toString('utf8').trim() || `exit code ${result.exitCode}`;
  return new VirtError('OPERATION_FAILED', `${what}: ${detail}${logTail ? `\n${logTail}` : ''}`);
}

/** lxc-attach's --namespaces names (lxc-attach(1)). */
const LXC_NAMESPACE_FLAGS: Record<LxcNamespace, string> = {
  mount: 'MOUNT',
  pid: 'PID',
  uts: 'UTSNAME',
  ipc: 'IPC',
  net: 'NETWORK',
  user: 'USER',
  cgroup: 'CGROUP',
};

/**
 * Containers through Debian's LXC userspace (lxc-start, lxc-stop, lxc-info, lxc-attach, lxc-freeze):
 * one container per domain, named by its uuid, with its config under the driver's state dir (`lxc-* -P stateDir`).
 * lxc-start -d daemonizes a monitor in its own session, so containers outlive the agent and are re-adopted.
 * Mapping: memory (MiB) → memory limit (+ memsw / swap.max 0); vcpus → CFS quota of vcpus × 100 ms per 100 ms
 * (no cpuset pinning); shutdown → halt signal (SIGUSR2 for busybox init, else LXC's SIGPWR) then poll lxc-info;
 * reboot → reboot signal, wait for a new init; reset → kill and start; suspend/resume → freezer.
 * Console: output from lxc.console.logfile, input through `script` + `lxc-console -t 0` (see lxc-console.ts).
 */
export class LxcDriver implements HypervisorDriver, ConsoleCapability, StatsCapability {
  readonly name = 'lxc';
  readonly domainTypes = ['lxc'] as const;
  readonly console: ConsoleCapability = this;
  readonly stats: StatsCapability = this;
  readonly exec: ExecCapability = { exec: (domain, request) => this.execute(domain, request) };
  // lxc-attach -e keeps the agent's cgroup, capabilities and LSM label (virsh lxc-enter-namespace --noseclabel)
  readonly namespaces: NamespaceCapability = {
    enter: (domain, { namespaces, ...request }) =>
      this.execute(domain, request, ['--elevated-privileges', ...(namespaces ? ['--namespaces', namespaces.map((name) => LXC_NAMESPACE_FLAGS[name]).join('|')] : [])]),
  };
  private readonly options: LxcDriverOptions;
  private context: DriverContext | undefined;
  private cgroupVersion: CgroupVersion = 'v1';
  private readonly watches = new Map<string, Watch>();
  private readonly consoles = new Map<string, LxcConsole>();

  constructor(options: LxcDriverOptions = {}) {
    this.options = options;
  }

  async init(context: DriverContext): Promise<void> {
    this.context = context;
    this.cgroupVersion = detectCgroupVersion();
    await mkdir(context.stateDir, { recursive: true, mode: 0o700 });
  }

  async probe(): Promise<DriverInfo> {
    const base = { name: this.name, domainTypes: [...this.domainTypes], capabilities: driverCapabilities(this) };
    const lxcStart = findTool('lxc-start', this.options.binDir);
    if (!lxcStart) return { ...base, available: false, detail: 'lxc-start not found (Debian package lxc)' };
    const version = await run(lxcStart, ['--version'], { timeoutMs: 5_000 }).catch(() => undefined);
    if (!version || version.exitCode !== 0) return { ...base, available: false, detail: 'lxc-start --version failed' };
    return { ...base, available: true, detail: `LXC ${version.stdout.toString('utf8').trim()}, cgroup ${this.cgroupVersion}` };
  }

  validate(config: DomainConfig): void {
    if (config.driver !== 'lxc') throw new VirtError('OPERATION_UNSUPPORTED', `the lxc driver cannot run ${config.driver} domains`);
    const container = config.container;
    if (!container) throw new VirtError('INVALID_ARG', 'an lxc domain needs container settings (at least container.rootfs)');
    if (config.disks.length > 0) throw new VirtError('OPERATION_UNSUPPORTED', 'lxc domains have no disks: the root filesystem is container.rootfs');
    if (config.os.kernel || config.os.initrd) throw new VirtError('OPERATION_UNSUPPORTED', 'lxc domains share the host kernel: os.kernel and os.initrd do not apply');
    if (config.graphics?.type === 'vnc') throw new VirtError('OPERATION_UNSUPPORTED', 'lxc domains have no graphical console (graphics.type vnc)');
    const vmOnly = vmOnlyFields(config);
    if (vmOnly.length > 0) throw new VirtError('OPERATION_UNSUPPORTED', `lxc domains share the host's firmware, CPUs and memory: ${vmOnly.join(', ')} do not apply`);
    const init = container.init ?? DEFAULT_INIT;
    if (!init[0]?.startsWith('/')) throw new VirtError('INVALID_ARG', 'container.init[0] must be an absolute path inside the root filesystem');
    this.resolveNics(config);
  }

  async adopt(domain: DomainRecord): Promise<RunState> {
    const { uuid } = domain.config;
    const info = await this.info(uuid);
    const previous = asRuntime(domain.runtime);
    if (info.state === 'STOPPED' || info.pid === undefined) {
      if (previous) await this.cleanupAfterStop(uuid, previous);
      if (!isActive(domain.state)) return { state: domain.state, reason: domain.reason, runtime: null };
      return { state: 'shutoff', reason: 'unknown', runtime: null };
    }
    const runtime = await this.describe(uuid, info.pid);
    this.watch(uuid, runtime);
    const seen = domainStateOf(info.state);
    const reason = domain.state === seen.state ? domain.reason : seen.reason;
    return { state: seen.state, reason, runtime: { ...runtime } };
  }

  async start(domain: DomainRecord, options: { paused: boolean }): Promise<RunState> {
    this.require(domain, ['shutoff', 'crashed', 'nostate'], 'start');
    this.validate(domain.config);
    const { config } = domain;
    const { uuid } = config;
    const container = config.container!;
    // The agent resolves a pool volume to its path before start.
    if (!('path' in container.rootfs)) throw new VirtError('INTERNAL', `container ${config.name}: root filesystem volume was not resolved to a path`);
    const rootfs = await inspectRootfs(container.rootfs.path);
    const current = await this.info(uuid);
    if (current.state !== 'STOPPED') throw new VirtError('OPERATION_INVALID', `container ${config.name} is already ${current.state.toLowerCase()}`);

    const containerDir = this.containerDir(uuid);
    await mkdir(containerDir, { recursive: true, mode: 0o700 });
    const init = [...(container.init ?? DEFAULT_INIT)];
    const text = renderLxcConfig({
      config,
      cgroupVersion: this.cgroupVersion,
      rootfs: lxcRootfsPath(rootfs),
      containerDir,
      initFlavor: await initFlavorOf(rootfs, init[0]!),
      nics: this.resolveNics(config),
      memsw: this.cgroupVersion === 'v1' && existsSync('/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes'),
    });
    await writeFileAtomic(join(containerDir, 'config'), text);
    // A fresh console log per boot, like a serial log file.
    await rm(consoleLogPath(containerDir), { force: true });
    await rm(lxcLogPath(containerDir), { force: true });

    const started = await this.lxc('lxc-start', uuid, ['-d', '-o', lxcLogPath(containerDir), '-l', 'WARN', '--', ...init]);
    if (started.exitCode !== 0) throw toolError(`cannot start container ${config.name}`, started, await this.lxcLogTail(uuid));
    const info = await this.info(uuid);
    if (info.pid === undefined) throw new VirtError('OPERATION_FAILED', `container ${config.name} stopped right after starting\n${await this.lxcLogTail(uuid)}`);
    if (options.paused) await this.checked(`cannot pause container ${config.name}`, this.lxc('lxc-freeze', uuid, []));
    const runtime = await this.describe(uuid, info.pid);
    this.watch(uuid, runtime);
    return options.paused ? { state: 'paused', reason: 'user', runtime: { ...runtime } } : { state: 'running', reason: 'booted', runtime: { ...runtime } };
  }

  async shutdown(domain: DomainRecord, options: { timeoutMs: number }): Promise<RunState> {
    this.require(domain, ['running', 'blocked', 'paused', 'shutdown'], 'shut down');
    const { uuid, name } = domain.config;
    return this.owned(uuid, async () => {
      const info = await this.info(uuid);
      if (info.state === 'STOPPED') return this.stopped(domain, 'shutdown');
      // A frozen init cannot handle the halt signal.
      if (info.state === 'FROZEN' || info.state === 'FREEZING') await this.checked(`cannot thaw container ${name}`, this.lxc('lxc-unfreeze', uuid, []));
      await this.checked(`cannot signal container ${name} to shut down`, this.lxc('lxc-stop', uuid, ['--nokill', '--nowait']));
      const reached = await this.waitFor(uuid, (state) => state.state === 'STOPPED', options.timeoutMs);
      if (!reached) throw new VirtError('OPERATION_TIMEOUT', `container ${name} did not shut down within ${options.timeoutMs} ms`);
      return this.stopped(domain, 'shutdown');
    });
  }

  async destroy(domain: DomainRecord): Promise<RunState> {
    this.require(domain, ['running', 'blocked', 'paused', 'shutdown', 'crashed', 'pmsuspended'], 'destroy');
    const { uuid, name } = domain.config;
    return this.owned(uuid, async () => {
      const info = await this.info(uuid);
      if (info.state !== 'STOPPED') {
        const killed = await this.lxc('lxc-stop', uuid, ['-k']);
        if (killed.exitCode !== 0 && (await this.info(uuid)).state !== 'STOPPED') throw toolError(`cannot destroy container ${name}`, killed);
      }
      return this.stopped(domain, 'destroyed');
    });
  }

  async reboot(domain: DomainRecord, options: { timeoutMs: number }): Promise<RunState> {
    this.require(domain, ['running', 'blocked'], 'reboot');
    const { uuid, name } = domain.config;
    return this.owned(uuid, async () => {
      const before = await this.info(uuid);
      if (before.pid === undefined) throw new VirtError('OPERATION_INVALID', `container ${name} is not running`);
      await this.checked(`cannot signal container ${name} to reboot`, this.lxc('lxc-stop', uuid, ['-r', '--nowait']));
      // LXC restarts the container when its init exits for a reboot: wait for a new init.
      const reached = await this.waitFor(uuid, (state) => state.state === 'RUNNING' && state.pid !== undefined && state.pid !== before.pid, options.timeoutMs);
      if (!reached?.pid) {
        const now = await this.info(uuid);
        if (now.state === 'STOPPED') return this.stopped(domain, 'shutdown');
        throw new VirtError('OPERATION_TIMEOUT', `container ${name} did not reboot within ${options.timeoutMs} ms`);
      }
      const runtime = await this.describe(uuid, reached.pid);
      this.watch(uuid, runtime);
      return { state: 'running', reason: 'booted', runtime: { ...runtime } };
    });
  }

  /** A container has no reset line: kill it and start it again with the same config. */
  async reset(domain: DomainRecord): Promise<RunState> {
    this.require(domain, ['running', 'blocked', 'paused'], 'reset');
    const stopped = await this.destroy(domain);
    return this.start({ config: domain.config, state: stopped.state, reason: stopped.reason }, { paused: false });
  }

  async suspend(domain: DomainRecord): Promise<RunState> {
    this.require(domain, ['running', 'blocked'], 'suspend');
    await this.checked(`cannot freeze container ${domain.config.name}`, this.lxc('lxc-freeze', domain.config.uuid, []));
    return { state: 'paused', reason: 'user' };
  }

  async resume(domain: DomainRecord): Promise<RunState> {
    this.require(domain, ['paused'], 'resume');
    await this.checked(`cannot thaw container ${domain.config.name}`, this.lxc('lxc-unfreeze', domain.config.uuid, []));
    return { state: 'running', reason: 'unpaused' };
  }

  async undefine(domain: DomainRecord): Promise<void> {
    const { uuid, name } = domain.config;
    const info = await this.info(uuid);
    if (info.state !== 'STOPPED') throw new VirtError('OPERATION_INVALID', `container ${name} is still ${info.state.toLowerCase()}`);
    this.unwatch(uuid);
    await this.consoles.get(uuid)?.end();
    this.consoles.delete(uuid);
    await rm(this.containerDir(uuid), { recursive: true, force: true });
  }

  async close(): Promise<void> {
    for (const uuid of [...this.watches.keys()]) this.unwatch(uuid);
    await Promise.all([...this.consoles.values()].map((console) => console.end()));
    this.consoles.clear();
  }

  async openConsole(domain: DomainRecord): Promise<ConsoleSession> {
    if (domain.state !== 'running' && domain.state !== 'paused' && domain.state !== 'blocked') throw new VirtError('OPERATION_INVALID', 'domain is not running');
    const { uuid } = domain.config;
    let console = this.consoles.get(uuid);
    if (!console) {
      const lxcConsole = this.tool('lxc-console');
      const script = findTool('script');
      if (!script) throw new VirtError('OPERATION_UNSUPPORTED', 'the container console needs util-linux script');
      console = new LxcConsole({ logPath: consoleLogPath(this.containerDir(uuid)), lxcConsole, script, setpriv: findTool('setpriv'), lxcpath: this.lxcpath, name: uuid });
      this.consoles.set(uuid, console);
    }
    return console.session();
  }

  async domainStats(domain: DomainRecord, options: { deadlineMs: number }): Promise<DomainStats> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new VirtError('OPERATION_TIMEOUT', `stats of ${domain.config.name} took longer than ${options.deadlineMs} ms`)), options.deadlineMs);
    });
    try {
      return await Promise.race([this.collectStats(domain), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  async execute(domain: DomainRecord, request: ExecRequest, attachOptions: readonly string[] = []): Promise<ExecResult> {
    if (domain.state !== 'running' && domain.state !== 'blocked') throw new VirtError('OPERATION_INVALID', `cannot exec in container ${domain.config.name}: it is ${domain.state}`);
    const env = Object.entries(request.env ?? {}).flatMap(([name, value]) => ['-v', `${name}=${value}`]);
    const timeoutMs = (request.timeout ?? DEFAULT_EXEC_TIMEOUT_S) * 1000;
    const result = await run(this.tool('lxc-attach'), ['-P', this.lxcpath, '-n', domain.config.uuid, ...attachOptions, '--clear-env', ...env, '--', ...request.command], {
      timeoutMs,
      // Killing lxc-attach alone would leave the command running inside the container.
      beforeKill: async (pid) => {
        for (const child of (await descendants(pid)).reverse()) {
          try {
            process.kill(child, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      },
    });
    return { exitCode: result.exitCode, stdout: result.stdout.toString('utf8'), stderr: result.stderr.toString('utf8'), timedOut: result.timedOut };
  }

  private async collectStats(domain: DomainRecord): Promise<DomainStats> {
    const { uuid, name, memory } = domain.config;
    const base: DomainStats = { uuid, name, state: domain.state, reason: domain.reason, collectedAt: new Date().toISOString() };
    const pid = this.watches.get(uuid)?.runtime.initPid ?? asRuntime(domain.runtime)?.initPid ?? (await this.info(uuid)).pid;
    if (pid === undefined || (domain.state !== 'running' && domain.state !== 'paused' && domain.state !== 'blocked')) return base;
    const directories = await processCgroupDirectories(pid, uuid).catch(() => undefined);
    if (!directories) return base;
    const cgroup = await readCgroupStats(this.cgroupVersion, directories);
    const net = await readFile(`/proc/${pid}/net/dev`, 'utf8').then(parseNetDev, () => undefined);
    const stats: DomainStats = { ...base };
    if (cgroup.cpu) stats.cpu = cgroup.cpu;
    stats.memory = { maximumBytes: memory * MIB };
    if (cgroup.memory) {
      stats.memory.currentBytes = cgroup.memory.currentBytes;
      if (cgroup.memory.rssBytes !== undefined) stats.memory.rssBytes = cgroup.memory.rssBytes;
      if (cgroup.memory.limitBytes !== undefined) stats.memory.limitBytes = cgroup.memory.limitBytes;
    }
    if (cgroup.pids) stats.pids = cgroup.pids;
    if (net) stats.net = net;
    return stats;
  }

  private get lxcpath(): string {
    if (!this.context) throw new VirtError('INTERNAL', 'the lxc driver is not initialised');
    return this.context.stateDir;
  }

  private containerDir(uuid: string): string {
    return join(this.lxcpath, uuid);
  }

  private tool(name: string): string {
    const path = findTool(name, this.options.binDir);
    if (!path) throw new VirtError('OPERATION_UNSUPPORTED', `${name} is not installed (Debian package lxc)`);
    return path;
  }

  private lxc(tool: string, uuid: string, args: readonly string[]): Promise<RunResult> {
    return run(this.tool(tool), ['-P', this.lxcpath, '-n', uuid, ...args], { timeoutMs: TOOL_TIMEOUT_MS });
  }

  private async checked(what: string, pending: Promise<RunResult>): Promise<RunResult> {
    const result = await pending;
    if (result.exitCode !== 0) throw toolError(what, result);
    return result;
  }

  /** lxc-info for a container; one that was never started (no config) is STOPPED. */
  private async info(uuid: string): Promise<LxcInfo> {
    if (!existsSync(join(this.containerDir(uuid), 'config'))) return { exists: false, state: 'STOPPED' };
    const result = await this.lxc('lxc-info', uuid, ['-s', '-p']);
    const parsed = parseLxcInfo(result.stdout.toString('utf8'));
    if (result.exitCode !== 0 || !parsed.state) throw toolError(`cannot query container ${uuid}`, result);
    return { exists: true, state: parsed.state, ...(parsed.pid === undefined ? {} : { pid: parsed.pid }) };
  }

  private async waitFor(uuid: string, done: (info: LxcInfo) => boolean, timeoutMs: number): Promise<LxcInfo | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const info = await this.info(uuid);
      if (done(info)) return info;
      if (Date.now() >= deadline) return undefined;
      await sleep(Math.min(POLL_MS, Math.max(0, deadline - Date.now())));
    }
  }

  private async lxcLogTail(uuid: string): Promise<string> {
    const text = await readFile(lxcLogPath(this.containerDir(uuid)), 'utf8').catch(() => '');
    return text.split('\n').filter(Boolean).slice(-5).join('\n');
  }

  private async describe(uuid: string, pid: number): Promise<LxcRuntime> {
    const initStartTime = (await processStartTime(pid)) ?? 0;
    const directories = await processCgroupDirectories(pid, uuid).catch(() => new Map<string, string>());
    const monitorPid = await parentPid(pid);
    const monitorStartTime = monitorPid === undefined ? undefined : await processStartTime(monitorPid);
    const monitor = monitorPid !== undefined && monitorStartTime !== undefined ? { monitorPid, monitorStartTime } : {};
    return { initPid: pid, initStartTime, cgroupDirs: [...new Set(directories.values())], ...monitor };
  }

  private async stopped(domain: DomainRecord, reason: 'shutdown' | 'destroyed'): Promise<RunState> {
    const { uuid } = domain.config;
    const runtime = this.watches.get(uuid)?.runtime ?? asRuntime(domain.runtime);
    this.unwatch(uuid);
    if (runtime) await this.cleanupAfterStop(uuid, runtime);
    return { state: 'shutoff', reason, runtime: null };
  }

  /** Ends console sessions, waits for LXC's monitor to leave its cgroups, then clears the lxc.pivot it leaves behind. */
  private async cleanupAfterStop(uuid: string, runtime: LxcRuntime): Promise<void> {
    await this.consoles.get(uuid)?.end();
    this.consoles.delete(uuid);
    const monitorDirs = runtime.cgroupDirs.map((dir) => join(dir, '..', `lxc.monitor.${uuid}`));
    const monitorAlive = async () =>
      runtime.monitorPid !== undefined && (await processStartTime(runtime.monitorPid)) === runtime.monitorStartTime;
    const deadline = Date.now() + MONITOR_EXIT_WAIT_MS;
    while ((monitorDirs.some((dir) => existsSync(dir)) || (await monitorAlive())) && Date.now() < deadline) await sleep(POLL_MS / 5);
    await pruneLxcPivots(runtime.cgroupDirs);
  }

  /** Runs a lifecycle call with the watcher held off, so only the call reports the change. */
  private async owned<T>(uuid: string, body: () => Promise<T>): Promise<T> {
    const watch = this.watches.get(uuid);
    if (watch) watch.busy += 1;
    try {
      return await body();
    } finally {
      if (watch) watch.busy -= 1;
    }
  }

  private watch(uuid: string, runtime: LxcRuntime): void {
    const existing = this.watches.get(uuid);
    if (existing) {
      existing.runtime = runtime;
      return;
    }
    const watch: Watch = { uuid, runtime, busy: 0, checking: false, timer: setInterval(() => void this.check(watch), this.options.watchIntervalMs ?? 1000) };
    watch.timer.unref();
    this.watches.set(uuid, watch);
  }

  private unwatch(uuid: string): void {
    const watch = this.watches.get(uuid);
    if (!watch) return;
    clearInterval(watch.timer);
    this.watches.delete(uuid);
  }

  /** Cheap path: init's /proc entry with the same start time means nothing happened; otherwise ask lxc-info. */
  private async check(watch: Watch): Promise<void> {
    if (watch.busy > 0 || watch.checking || this.watches.get(watch.uuid) !== watch) return;
    watch.checking = true;
    try {
      if ((await processStartTime(watch.runtime.initPid)) === watch.runtime.initStartTime) return;
      const info = await this.info(watch.uuid);
      if (watch.busy > 0 || this.watches.get(watch.uuid) !== watch) return;
      const context = this.context!;
      if (info.state === 'STOPPED' || info.pid === undefined) {
        this.unwatch(watch.uuid);
        await this.cleanupAfterStop(watch.uuid, watch.runtime);
        context.observedState(watch.uuid, { state: 'shutoff', reason: 'shutdown', runtime: null });
        return;
      }
      // The guest rebooted itself: LXC started a new init.
      watch.runtime = await this.describe(watch.uuid, info.pid);
      context.observedState(watch.uuid, { state: 'running', reason: 'booted', runtime: { ...watch.runtime } });
    } catch (error) {
      this.context?.logger.warn({ err: error, uuid: watch.uuid }, 'lxc watcher could not check a container');
    } finally {
      watch.checking = false;
    }
  }

  private resolveNics(config: DomainConfig): LxcNic[] {
    const nics: LxcNic[] = [];
    config.nics.forEach((nic, index) => {
      if (nic.type === 'none') return;
      if (nic.type === 'user') throw new VirtError('OPERATION_UNSUPPORTED', 'containers have no user-mode networking: use a network or bridge NIC');
      if (!nic.source) throw new VirtError('INVALID_ARG', `NIC ${index} of type ${nic.type} needs a source`);
      const resolver = this.context?.networks;
      // veths are made by lxc-start in the agent's namespace: the bridge must be there too
      if (resolver?.netns !== undefined && !this.options.networkBridge) {
        throw new VirtError('OPERATION_UNSUPPORTED', `NIC ${index}: containers cannot join bridges in network namespace ${resolver.netns} yet`);
      }
      const bridge = nic.type === 'bridge' ? nic.source : (this.options.networkBridge?.(nic.source) ?? resolver?.resolveNic(nic).bridge);
      if (!bridge) throw new VirtError('OPERATION_UNSUPPORTED', `network ${nic.source} has no bridge the lxc driver knows`);
      if (!existsSync(`/sys/class/net/${bridge}/bridge`)) throw new VirtError('INVALID_ARG', `NIC ${index}: bridge ${bridge} does not exist on this node`);
      nics.push({ bridge, hostName: vethHostName(config.uuid, nics.length), ...(nic.mac ? { mac: nic.mac } : {}) });
    });
    return nics;
  }

  private require(domain: DomainRecord, states: readonly string[], verb: string): void {
    if (!states.includes(domain.state)) throw new VirtError('OPERATION_INVALID', `cannot ${verb} domain ${domain.config.name}: it is ${domain.state}`);
  }
}


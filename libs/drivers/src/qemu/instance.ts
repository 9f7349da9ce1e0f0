import type { ChildProcess } from 'node:child_process';
import type { DomainConfig } from '@virtbus/api-contract';
import type { ConsoleHub } from './console.js';
import type { QemuAccel } from './command-line.js';
import type { Qmp, QmpEvent } from './qmp/index.js';
import { isProcessAlive, waitForProcessExit, zombieExitStatus } from './process.js';

/** What the agent persists for a running QEMU domain (the driver's `runtime` blob). */
export interface QemuRuntime {
  [key: string]: unknown;
  pid: number;
  /** /proc/<pid>/stat start time in clock ticks: pid + start time identify the process across pid reuse. */
  startTime: number;
  qmpSocket: string;
  consoleSocket?: string;
  consoleLog?: string;
  qemuLog: string;
  accel: QemuAccel;
  startedAt: string;
}

export function parseRuntime(runtime: Record<string, unknown> | undefined): QemuRuntime | undefined {
  if (!runtime) return undefined;
  const { pid, startTime, qmpSocket, qemuLog } = runtime;
  if (typeof pid !== 'number' || typeof startTime !== 'number' || typeof qmpSocket !== 'string' || typeof qemuLog !== 'string') return undefined;
  return runtime as QemuRuntime;
}

export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

const LIVENESS_POLL_MS = 1_000;

/**
 * One QEMU process the driver watches: its QMP, console hub and exit detection
 * (child 'exit' when we spawned it, QMP EOF + /proc polling otherwise; a zombie counts as dead).
 */
export class QemuInstance {
  qmp?: Qmp;
  console?: ConsoleHub;
  /** Lifecycle calls in progress; STOP/RESUME seen meanwhile are the call's own doing. */
  busy = 0;
  /** Set by destroy/shutdown so the exit is reported with their reason. */
  expectedExit?: 'destroyed' | 'shutdown' | 'migrated' | 'saved' | 'from_snapshot';
  /** The SHUTDOWN event QEMU sent, if any (guest poweroff, host quit or signal). */
  shutdownEvent?: { guest: boolean; reason: string };
  panicked = false;
  /** qemu-ga opened its channel (VSERPORT_CHANGE): stats may ask it for the `user` NICs' counters. */
  guestAgentOpen = false;
  /** A reboot waiting for the guest to power off, so it can reset instead of quitting. */
  onGuestPoweroff?: () => void;
  /** Reported to the agent once the driver returned it from start/adopt. */
  registered = false;
  exitInfo?: ExitInfo;
  readonly exited: Promise<ExitInfo>;
  private resolveExited!: (info: ExitInfo) => void;
  private livenessTimer?: NodeJS.Timeout;
  private detached = false;
  private readonly onChildExit = (code: number | null, signal: NodeJS.Signals | null) => this.markExited({ code, signal });

  constructor(
    readonly config: DomainConfig,
    readonly runtime: QemuRuntime,
    private readonly child: ChildProcess | undefined,
    private readonly onExit: (instance: QemuInstance, info: ExitInfo) => void,
  ) {
    this.exited = new Promise((resolve) => (this.resolveExited = resolve));
    child?.once('exit', this.onChildExit);
    this.livenessTimer = setInterval(() => this.checkAlive(), LIVENESS_POLL_MS);
    this.livenessTimer.unref();
  }

  get uuid(): string {
    return this.config.uuid;
  }

  get hasExited(): boolean {
    return this.exitInfo !== undefined;
  }

  attachQmp(qmp: Qmp, onEvent: (instance: QemuInstance, event: QmpEvent) => void): void {
    this.qmp = qmp;
    qmp.onEvent((event) => {
      if (!this.detached) onEvent(this, event);
    });
    qmp.onClose(() => {
      if (!this.detached) void this.pollUntilExit();
    });
  }

  isAlive(): boolean {
    return !this.hasExited && isProcessAlive(this.runtime.pid, this.runtime.startTime);
  }

  /** Stops watching without touching QEMU (agent shutdown). */
  detach(): void {
    this.detached = true;
    this.stopWatching();
    this.qmp?.close();
    this.console?.end();
  }

  markExited(info: ExitInfo): void {
    if (this.exitInfo || this.detached) return;
    this.exitInfo = info;
    this.stopWatching();
    this.qmp?.close();
    this.console?.end();
    this.resolveExited(info);
    this.onExit(this, info);
  }

  private stopWatching(): void {
    clearInterval(this.livenessTimer);
    this.child?.off('exit', this.onChildExit);
  }

  private checkAlive(): void {
    if (this.hasExited || this.detached) return;
    if (!isProcessAlive(this.runtime.pid, this.runtime.startTime)) this.markExitedFromProcfs();
  }

  /** QMP hit EOF: QEMU is exiting; poll quickly, since a slow reaper may leave it a zombie for a while. */
  private async pollUntilExit(): Promise<void> {
    const gone = await waitForProcessExit(this.runtime.pid, this.runtime.startTime, 10_000, 10);
    if (gone) this.markExitedFromProcfs();
  }

  /** Exit status from the zombie if it is still there, else from our child handle (its 'exit' usually comes first). */
  private markExitedFromProcfs(): void {
    const zombie = zombieExitStatus(this.runtime.pid, this.runtime.startTime);
    if (zombie) return this.markExited(zombie);
    const child = this.child;
    if (!child) return this.markExited({ code: null, signal: null });
    setTimeout(() => this.markExited({ code: child.exitCode, signal: child.signalCode }), 300).unref();
  }
}

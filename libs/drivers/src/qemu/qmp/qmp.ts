import { BlockCommands } from './commands/block.js';
import { CapabilityCommands } from './commands/capabilities.js';
import { JobCommands } from './commands/jobs.js';
import { LifecycleCommands } from './commands/lifecycle.js';
import { MigrationCommands } from './commands/migration.js';
import { MachineCommands } from './commands/machine.js';
import { MiscCommands } from './commands/misc.js';
import { NetCommands } from './commands/net.js';
import type { QmpRun } from './commands/run.js';
import { SnapshotCommands } from './commands/snapshots.js';
import { UiCommands } from './commands/ui.js';
import { QmpMonitor, type ConnectOptions, type QmpEvent } from './monitor.js';

/** A pending wait for one event; `stop` drops it (and its timer) early. */
export interface EventWait {
  promise: Promise<QmpEvent>;
  stop(): void;
}

/**
 * A QEMU's QMP, in layers like libvirt's: the monitor (transport, private to this folder) under typed command groups.
 * Drivers call `qmp.<group>.<command>()` and never build a command by name.
 */
export class Qmp {
  readonly lifecycle: LifecycleCommands;
  readonly block: BlockCommands;
  readonly migration: MigrationCommands;
  readonly net: NetCommands;
  readonly jobs: JobCommands;
  readonly snapshots: SnapshotCommands;
  readonly misc: MiscCommands;
  readonly ui: UiCommands;
  readonly capabilities: CapabilityCommands;
  readonly machine: MachineCommands;

  private constructor(private readonly monitor: QmpMonitor) {
    const run: QmpRun = (command, args, options) => monitor.execute(command, args, options);
    this.lifecycle = new LifecycleCommands(run);
    this.block = new BlockCommands(run);
    this.migration = new MigrationCommands(run);
    this.net = new NetCommands(run);
    this.jobs = new JobCommands(run);
    this.snapshots = new SnapshotCommands(run);
    this.misc = new MiscCommands(run);
    this.ui = new UiCommands(run);
    this.capabilities = new CapabilityCommands(run);
    this.machine = new MachineCommands(run);
  }

  /** Connects to QEMU's QMP socket and leaves capabilities negotiation mode. */
  static async connect(path: string, options?: ConnectOptions): Promise<Qmp> {
    return new Qmp(await QmpMonitor.connect(path, options));
  }

  get closed(): boolean {
    return this.monitor.closed;
  }

  /** Drops the connection; pending commands reject with QmpClosedError. QEMU itself keeps running. */
  close(): void {
    this.monitor.close();
  }

  onEvent(listener: (event: QmpEvent) => void): void {
    this.monitor.on('event', listener);
  }

  offEvent(listener: (event: QmpEvent) => void): void {
    this.monitor.off('event', listener);
  }

  /** The connection ended (QEMU exited, or close()). */
  onClose(listener: () => void): void {
    this.monitor.on('close', listener);
  }

  /** The first event named `name` whose data matches; rejects with `onTimeout()` after `timeoutMs`. */
  nextEvent(name: string, matches: (data: Record<string, unknown>) => boolean, timeoutMs: number, onTimeout: () => Error): EventWait {
    let listener: ((event: QmpEvent) => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    const promise = new Promise<QmpEvent>((resolve, reject) => {
      listener = (event) => {
        if (event.event === name && matches(event.data)) resolve(event);
      };
      this.monitor.on('event', listener);
      timer = setTimeout(() => reject(onTimeout()), timeoutMs);
    });
    const stop = () => {
      clearTimeout(timer);
      if (listener) this.monitor.off('event', listener);
    };
    promise.then(stop, stop);
    return { promise, stop };
  }
}

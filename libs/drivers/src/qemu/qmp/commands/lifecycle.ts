import { QmpCommandError } from '../monitor.js';
import type { ExecuteOptions, QmpRun } from './run.js';

/** RunState (qapi/run-state.json): what query-status reports. */
export type QemuRunStatus =
  | 'debug'
  | 'inmigrate'
  | 'internal-error'
  | 'io-error'
  | 'paused'
  | 'postmigrate'
  | 'prelaunch'
  | 'finish-migrate'
  | 'restore-vm'
  | 'running'
  | 'save-vm'
  | 'shutdown'
  | 'suspended'
  | 'watchdog'
  | 'guest-panicked'
  | 'colo';

/** StatusInfo (qapi/run-state.json). */
export interface QmpStatusInfo {
  status: QemuRunStatus;
  running: boolean;
  singlestep?: boolean;
}

/** CpuInfoFast (qapi/machine.json), the members we read. */
export interface QmpCpuInfoFast {
  'cpu-index': number;
  'qom-path': string;
  'thread-id': number;
  target: string;
}

/** BalloonInfo (qapi/machine.json). */
export interface QmpBalloonInfo {
  actual: number;
}

/** Run state and power: query-status, cont, stop, system_powerdown, system_reset, quit, vCPU and balloon queries. */
export class LifecycleCommands {
  constructor(private readonly run: QmpRun) {}

  queryStatus(options?: ExecuteOptions): Promise<QmpStatusInfo> {
    return this.run<QmpStatusInfo>('query-status', undefined, options);
  }

  async cont(options?: ExecuteOptions): Promise<void> {
    await this.run('cont', undefined, options);
  }

  async stop(options?: ExecuteOptions): Promise<void> {
    await this.run('stop', undefined, options);
  }

  async systemPowerdown(options?: ExecuteOptions): Promise<void> {
    await this.run('system_powerdown', undefined, options);
  }

  async systemReset(options?: ExecuteOptions): Promise<void> {
    await this.run('system_reset', undefined, options);
  }

  async quit(options?: ExecuteOptions): Promise<void> {
    await this.run('quit', undefined, options);
  }

  queryCpusFast(options?: ExecuteOptions): Promise<QmpCpuInfoFast[]> {
    return this.run<QmpCpuInfoFast[]>('query-cpus-fast', undefined, options);
  }

  /** Null when the domain has no balloon device (QEMU answers DeviceNotActive). */
  async queryBalloon(options?: ExecuteOptions): Promise<QmpBalloonInfo | null> {
    try {
      return await this.run<QmpBalloonInfo>('query-balloon', undefined, options);
    } catch (error) {
      if (error instanceof QmpCommandError && error.errorClass === 'DeviceNotActive') return null;
      throw error;
    }
  }
}

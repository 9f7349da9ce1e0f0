import { QmpCommandError, type ExecuteOptions, type QmpMonitor } from './monitor.js';

/** QEMU's RunState names as query-status reports them. */
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

export interface QmpStatusInfo {
  status: QemuRunStatus;
  running: boolean;
}

export interface QmpCpuInfoFast {
  'cpu-index': number;
  'qom-path': string;
  'thread-id': number;
  target: string;
}

export interface QmpBlockDeviceStats {
  rd_bytes: number;
  wr_bytes: number;
  rd_operations: number;
  wr_operations: number;
  flush_operations: number;
  rd_total_time_ns: number;
  wr_total_time_ns: number;
  flush_total_time_ns: number;
}

export interface QmpBlockStats {
  device?: string;
  qdev?: string;
  'node-name'?: string;
  stats: QmpBlockDeviceStats;
}

export interface QmpBalloonInfo {
  actual: number;
}

/** Typed wrappers over the QMP commands the driver uses; each takes the usual per-command options. */
export class QemuCommands {
  constructor(readonly monitor: QmpMonitor) {}

  queryStatus(options?: ExecuteOptions): Promise<QmpStatusInfo> {
    return this.monitor.execute<QmpStatusInfo>('query-status', undefined, options);
  }

  async cont(options?: ExecuteOptions): Promise<void> {
    await this.monitor.execute('cont', undefined, options);
  }

  async stop(options?: ExecuteOptions): Promise<void> {
    await this.monitor.execute('stop', undefined, options);
  }

  async systemPowerdown(options?: ExecuteOptions): Promise<void> {
    await this.monitor.execute('system_powerdown', undefined, options);
  }

  async systemReset(options?: ExecuteOptions): Promise<void> {
    await this.monitor.execute('system_reset', undefined, options);
  }

  async quit(options?: ExecuteOptions): Promise<void> {
    await this.monitor.execute('quit', undefined, options);
  }

  queryCpusFast(options?: ExecuteOptions): Promise<QmpCpuInfoFast[]> {
    return this.monitor.execute<QmpCpuInfoFast[]>('query-cpus-fast', undefined, options);
  }

  queryBlockstats(options?: ExecuteOptions): Promise<QmpBlockStats[]> {
    return this.monitor.execute<QmpBlockStats[]>('query-blockstats', undefined, options);
  }

  /** Null when the domain has no balloon device (QEMU answers DeviceNotActive). */
  async queryBalloon(options?: ExecuteOptions): Promise<QmpBalloonInfo | null> {
    try {
      return await this.monitor.execute<QmpBalloonInfo>('query-balloon', undefined, options);
    } catch (error) {
      if (error instanceof QmpCommandError && error.errorClass === 'DeviceNotActive') return null;
      throw error;
    }
  }
}

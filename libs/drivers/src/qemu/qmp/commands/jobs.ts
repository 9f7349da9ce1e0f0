import { QmpCommandGroup, type ExecuteOptions } from './run.js';

/** JobStatus (qapi/job.json). */
export type QmpJobStatus = 'undefined' | 'created' | 'running' | 'paused' | 'ready' | 'standby' | 'waiting' | 'pending' | 'aborting' | 'concluded' | 'null';

/** JobInfo (qapi/job.json), the members we read. */
export interface QmpJobInfo {
  id: string;
  type: string;
  status: QmpJobStatus;
  error?: string;
}

/** BlockJobInfo (qapi/block-core.json), the members we read. */
export interface QmpBlockJobInfo {
  type: string;
  /** The job id (named `device` for historical reasons). */
  device: string;
  len: number;
  offset: number;
  /** Speed limit in bytes per second (0: none). */
  speed: number;
  ready: boolean;
  status: QmpJobStatus;
  error?: string;
}

/** Background jobs: the generic job API plus the block jobs we start (qapi/job.json, block-core.json). */
export class JobCommands extends QmpCommandGroup {
  queryJobs(options?: ExecuteOptions): Promise<QmpJobInfo[]> {
    return this.run<QmpJobInfo[]>('query-jobs', undefined, options);
  }

  async jobComplete(id: string, options?: ExecuteOptions): Promise<void> {
    await this.run('job-complete', { id }, options);
  }

  async jobDismiss(id: string, options?: ExecuteOptions): Promise<void> {
    await this.run('job-dismiss', { id }, options);
  }

  queryBlockJobs(options?: ExecuteOptions): Promise<QmpBlockJobInfo[]> {
    return this.run<QmpBlockJobInfo[]>('query-block-jobs', undefined, options);
  }

  /** On a ready mirror without `force`: completes with the target in sync, no pivot. */
  async blockJobCancel(device: string, force: boolean, options?: ExecuteOptions): Promise<void> {
    await this.run('block-job-cancel', { device, force }, options);
  }

  async blockdevMirror(
    args: { 'job-id': string; device: string; target: string; sync: 'top' | 'full' | 'none'; 'auto-dismiss'?: boolean },
    options?: ExecuteOptions,
  ): Promise<void> {
    await this.run('blockdev-mirror', args, options);
  }

  /** Merges `top-node` (default: the active layer, `device`) down into `base-node`. */
  async blockCommit(
    args: { 'job-id': string; device: string; 'base-node'?: string; 'top-node'?: string; speed?: number; 'auto-dismiss'?: boolean },
    options?: ExecuteOptions,
  ): Promise<void> {
    await this.run('block-commit', args, options);
  }

  /** Copies the backing chain (down to `base-node`, or all of it) into `device`'s top image, then drops it from the chain. */
  async blockStream(args: { 'job-id': string; device: string; 'base-node'?: string; speed?: number; 'auto-dismiss'?: boolean }, options?: ExecuteOptions): Promise<void> {
    await this.run('block-stream', args, options);
  }

  /** Mirrors `device` into a new image file QEMU creates (`mode: absolute-paths`), opened as `node-name`. */
  async driveMirror(
    args: {
      'job-id': string;
      device: string;
      target: string;
      format: 'qcow2' | 'raw';
      'node-name'?: string;
      sync: 'top' | 'full' | 'none';
      mode?: 'existing' | 'absolute-paths';
      speed?: number;
      'auto-dismiss'?: boolean;
    },
    options?: ExecuteOptions,
  ): Promise<void> {
    await this.run('drive-mirror', args, options);
  }

  /** A ready mirror or active commit: pivot the disk onto the target. */
  async blockJobComplete(device: string, options?: ExecuteOptions): Promise<void> {
    await this.run('block-job-complete', { device }, options);
  }
}

import { QmpCommandGroup, type ExecuteOptions } from './run.js';

/** Internal snapshot jobs (qapi/migration.json): `vmstate` is the node that holds the RAM, `devices` the disks' nodes. */
export interface QmpSnapshotJob {
  'job-id': string;
  tag: string;
  vmstate: string;
  devices: string[];
}

/** BlockdevSnapshot (qapi/block-core.json): `overlay` (a node added with no backing) goes on top of `node`. */
export interface QmpBlockdevSnapshot {
  node: string;
  overlay: string;
}

/** Snapshots: internal ones as jobs, external overlays atomically across disks (transaction of blockdev-snapshot). */
export class SnapshotCommands extends QmpCommandGroup {
  async snapshotSave(job: QmpSnapshotJob, options?: ExecuteOptions): Promise<void> {
    await this.run('snapshot-save', job, options);
  }

  async snapshotLoad(job: QmpSnapshotJob, options?: ExecuteOptions): Promise<void> {
    await this.run('snapshot-load', job, options);
  }

  async snapshotDelete(job: Omit<QmpSnapshotJob, 'vmstate'>, options?: ExecuteOptions): Promise<void> {
    await this.run('snapshot-delete', job, options);
  }

  /** One `transaction` of blockdev-snapshot actions: every disk gets its overlay, or none does. */
  async blockdevSnapshots(snapshots: QmpBlockdevSnapshot[], options?: ExecuteOptions): Promise<void> {
    await this.run('transaction', { actions: snapshots.map((data) => ({ type: 'blockdev-snapshot', data })) }, options);
  }
}

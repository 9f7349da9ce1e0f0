import { setTimeout as sleep } from 'node:timers/promises';
import { VirtError, type BlockIoTune, type BlockJobInfo } from '@virtbus/api-contract';
import type { AdoptedBlockJob, BlockJobCapability, BlockJobRun, BlockJobStart, BlockJobWatch, DomainRecord } from '../driver.js';
import type { Qmp, QmpBlockDeviceInfo, QmpIoThrottle } from './qmp/index.js';
import { failure } from './resources.js';

const POLL_MS = 200;

/** blkdeviotune's fields → block_set_io_throttle's (and query-block's). */
const IO_TUNE = {
  totalBytesSec: 'bps',
  readBytesSec: 'bps_rd',
  writeBytesSec: 'bps_wr',
  totalIopsSec: 'iops',
  readIopsSec: 'iops_rd',
  writeIopsSec: 'iops_wr',
} as const satisfies Record<keyof BlockIoTune, keyof QmpIoThrottle>;

/** QEMU's job type → virDomainBlockJobType (the same names the BLOCK_JOB events carry). */
const JOB_TYPES: Record<string, BlockJobInfo['type']> = { stream: 'PULL', mirror: 'COPY', commit: 'COMMIT', 'active-commit': 'ACTIVE_COMMIT' };

/** Block jobs over QMP; a disk's job has the disk's target as its id, so BLOCK_JOB events name the disk. */
export class QemuBlockJobs implements BlockJobCapability {
  /** `uuid/target` of the commits this driver started on the active layer: QEMU calls them `commit` too. */
  private readonly activeCommits = new Set<string>();

  constructor(private readonly qmpOf: (domain: DomainRecord) => Qmp) {}

  async start(domain: DomainRecord, target: string, job: BlockJobStart, watch: BlockJobWatch): Promise<BlockJobRun> {
    const qmp = this.qmpOf(domain);
    const what = `block ${job.kind} of ${target} on ${domain.config.name}`;
    let pivot = false;
    let top = '';
    this.activeCommits.delete(`${domain.config.uuid}/${target}`);
    try {
      top = (await this.activeNode(qmp, target))['node-name']!;
      // a job that ended while no agent followed it (restart) still holds the id until dismissed
      if ((await qmp.jobs.queryJobs()).some((entry) => entry.id === target && entry.status === 'concluded')) await qmp.jobs.jobDismiss(target);
      const common = { 'job-id': target, device: top, 'auto-dismiss': false, ...(job.bandwidth ? { speed: job.bandwidth } : {}) };
      const base = job.kind !== 'copy' && job.base ? { 'base-node': await this.nodeOf(qmp, job.base, target) } : {};
      if (job.kind === 'pull') await qmp.jobs.blockStream({ ...common, ...base });
      else if (job.kind === 'commit') {
        const from = job.top ? await this.nodeOf(qmp, job.top, target) : top;
        // an active commit ends ready: it pivots the disk onto the base, as virsh blockcommit --active --pivot
        pivot = from === top;
        if (pivot) this.activeCommits.add(`${domain.config.uuid}/${target}`);
        await qmp.jobs.blockCommit({ ...common, ...base, ...(pivot ? {} : { 'top-node': from }) });
      } else {
        pivot = job.pivot === true;
        const node = `copy-${target}-${Date.now().toString(36)}`;
        await qmp.jobs.driveMirror({ ...common, target: job.destination, format: job.format ?? 'qcow2', 'node-name': node, sync: 'full', mode: 'absolute-paths' });
      }
    } catch (error) {
      throw failure(error, what);
    }
    return { finished: this.follow(qmp, target, top, pivot, watch, what) };
  }

  async info(domain: DomainRecord, target: string): Promise<BlockJobInfo | undefined> {
    const job = (await this.qmpOf(domain).jobs.queryBlockJobs()).find((entry) => entry.device === target);
    const type = job && this.typeOf(domain.config.uuid, target, job.type);
    if (!job || !type) return undefined;
    return { target, type, bytesProcessed: job.offset, bytesTotal: job.len, ready: job.ready, bandwidth: job.speed };
  }

  async adoptJobs(domain: DomainRecord, targets: readonly string[], watch: (target: string) => BlockJobWatch): Promise<AdoptedBlockJob[]> {
    const qmp = this.qmpOf(domain);
    // our block jobs are named after their disk; migration's mirrors and snapshot jobs have other ids
    const jobs = (await qmp.jobs.queryJobs()).filter((job) => targets.includes(job.id) && JOB_TYPES[job.type]);
    const adopted: AdoptedBlockJob[] = [];
    for (const job of jobs) {
      const what = `block job of ${job.id} on ${domain.config.name}`;
      const top = job.status === 'concluded' ? '' : ((await this.activeNode(qmp, job.id))['node-name'] ?? '');
      adopted.push({ target: job.id, type: this.typeOf(domain.config.uuid, job.id, job.type)!, finished: this.follow(qmp, job.id, top, false, watch(job.id), what) });
    }
    return adopted;
  }

  /** virDomainBlockJobType of a disk's job: ACTIVE_COMMIT when this driver started the commit on the active layer, as libvirt reports it. */
  typeOf(uuid: string, target: string, qemuType: string): BlockJobInfo['type'] | undefined {
    return qemuType === 'commit' && this.activeCommits.has(`${uuid}/${target}`) ? 'ACTIVE_COMMIT' : JOB_TYPES[qemuType];
  }

  async abort(domain: DomainRecord, target: string, pivot: boolean): Promise<void> {
    const qmp = this.qmpOf(domain);
    try {
      if (pivot) await qmp.jobs.jobComplete(target);
      else await qmp.jobs.blockJobCancel(target, true);
    } catch (error) {
      throw failure(error, `blockjob ${pivot ? 'pivot' : 'abort'} of ${target} on ${domain.config.name}`);
    }
  }

  async resize(domain: DomainRecord, target: string, sizeBytes: number): Promise<void> {
    const qmp = this.qmpOf(domain);
    try {
      await qmp.block.blockResize((await this.activeNode(qmp, target))['node-name']!, sizeBytes);
    } catch (error) {
      throw failure(error, `blockresize of ${target} on ${domain.config.name}`);
    }
  }

  async setIoTune(domain: DomainRecord, target: string, tune: BlockIoTune): Promise<BlockIoTune> {
    const qmp = this.qmpOf(domain);
    const fields = Object.entries(IO_TUNE) as [keyof BlockIoTune, keyof QmpIoThrottle][];
    try {
      const { qdev } = await this.activeNode(qmp, target);
      await qmp.block.blockSetIoThrottle({ id: qdev, ...(Object.fromEntries(fields.map(([ours, qemu]) => [qemu, tune[ours] ?? 0])) as unknown as QmpIoThrottle) });
      const now = await this.activeNode(qmp, target);
      return Object.fromEntries(fields.map(([ours, qemu]) => [ours, now[qemu] ?? 0])) as BlockIoTune;
    } catch (error) {
      throw failure(error, `blkdeviotune of ${target} on ${domain.config.name}`);
    }
  }

  /** Polls the job to its end: progress from query-block-jobs, a pivot once ready when asked, a cancel on `signal`. */
  private async follow(qmp: Qmp, target: string, top: string, pivot: boolean, watch: BlockJobWatch, what: string): Promise<{ activePath: string }> {
    const cancel = () => void qmp.jobs.blockJobCancel(target, true).catch(() => undefined);
    watch.signal.addEventListener('abort', cancel, { once: true });
    let completing = false;
    try {
      for (;;) {
        const job = (await qmp.jobs.queryJobs()).find((entry) => entry.id === target);
        if (!job) throw new VirtError('OPERATION_FAILED', `${what}: the job vanished`);
        if (job.status === 'concluded') {
          await qmp.jobs.jobDismiss(target).catch(() => undefined);
          if (watch.signal.aborted) throw new VirtError('OPERATION_FAILED', `${what} was cancelled`);
          if (job.error) throw new VirtError('OPERATION_FAILED', `${what}: ${job.error}`);
          const now = await this.activeNode(qmp, target);
          if (now['node-name'] !== top) await this.release(qmp, top);
          return { activePath: now.file };
        }
        const progress = (await qmp.jobs.queryBlockJobs()).find((entry) => entry.device === target);
        if (progress) watch.onProgress(progress.offset, progress.len);
        if (job.status === 'ready' && pivot && !completing) {
          completing = true;
          await qmp.jobs.jobComplete(target);
        }
        await sleep(POLL_MS);
      }
    } catch (error) {
      throw failure(error, what);
    } finally {
      watch.signal.removeEventListener('abort', cancel);
    }
  }

  /** After a pivot: deletes the old top's nodes the monitor added (fmt-/file-<target>, an overlay), so the new top is a root node again. */
  private async release(qmp: Qmp, oldTop: string): Promise<void> {
    const nodes = await qmp.block.queryNamedBlockNodes();
    const old = nodes.find((node) => node['node-name'] === oldTop);
    const file = nodes.find((node) => node['node-name'] === oldTop.replace(/^fmt-/, 'file-') && node['node-name'] !== oldTop);
    // auto-named nodes (#block…) go with their last user; only ours need blockdev-del
    for (const node of [old, file]) if (node?.['node-name'] && !node['node-name'].startsWith('#')) await qmp.block.blockdevDel(node['node-name']).catch(() => undefined);
  }

  /** The node on top of the disk's chain (fmt-<target> until a snapshot or pivot put another there). */
  private async activeNode(qmp: Qmp, target: string): Promise<QmpBlockDeviceInfo & { qdev: string }> {
    const block = (await qmp.block.queryBlock()).find((entry) => entry.qdev === target || entry.qdev?.startsWith(`/machine/peripheral/${target}/`));
    if (!block?.inserted?.['node-name']) throw new VirtError('INVALID_ARG', `no disk ${target} with media in the running domain`);
    // the guest device holding the block backend (virtio-blk-pci's child `virtio-backend`), for block_set_io_throttle
    return { ...block.inserted, qdev: block.qdev ?? target };
  }

  private async nodeOf(qmp: Qmp, path: string, target: string): Promise<string> {
    const node = (await qmp.block.queryNamedBlockNodes()).find((entry) => entry.file === path && entry.drv !== 'file');
    if (!node?.['node-name']) throw new VirtError('INVALID_ARG', `${path} is not in the backing chain of disk ${target}`);
    return node['node-name'];
  }
}

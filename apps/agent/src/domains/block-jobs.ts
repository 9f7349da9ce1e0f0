import { VirtError, isActive, type AsyncOperation, type BlockIoTune, type BlockJobInfo, type LiveDisk } from '@virtbus/api-contract';
import type { BlockJobCapability, BlockJobRun, BlockJobStart, HypervisorDriver } from '@virtbus/drivers';
import type { OperationHandle, OperationManager } from '../storage/operations.js';
import { liveDisksOf } from './devices.js';
import { withTargets } from './disk-ops.js';
import type { DomainJobs } from './jobs.js';
import type { StoredDomain } from './store.js';

/** The verb that starts each virDomainBlockJobType, for an adopted job's operation. */
const KIND_OF_TYPE: Record<BlockJobInfo['type'], BlockJobStart['kind']> = { PULL: 'pull', COPY: 'copy', COMMIT: 'commit', ACTIVE_COMMIT: 'commit' };

/** A running domain's disk that block jobs may act on, with the driver's capability. */
function blockDisk(stored: StoredDomain, driver: HypervisorDriver, target: string): BlockJobCapability {
  if (!driver.blockJobs) throw new VirtError('OPERATION_UNSUPPORTED', `the ${driver.name} driver has no block jobs`);
  const { name } = stored.config;
  if (stored.state !== 'running' && stored.state !== 'paused') throw new VirtError('OPERATION_INVALID', `domain ${name} is ${stored.state}: block jobs need it running`);
  const disk = liveDisksOf(stored).find((entry) => entry.target === target);
  if (!disk) throw new VirtError('INVALID_ARG', `domain ${name} has no disk ${target}`);
  if (disk.device === 'cdrom' || !disk.source) throw new VirtError('INVALID_ARG', `disk ${target} of ${name} is a cdrom drive`);
  return driver.blockJobs;
}

/** The limits in force as libvirt's TUNABLE event names them (VIR_DOMAIN_TUNABLE_BLKDEV_*: blkdeviotune.disk, blkdeviotune.total_bytes_sec…). */
function ioTuneParams(target: string, tune: BlockIoTune): Record<string, string | number> {
  const params: Record<string, string | number> = { 'blkdeviotune.disk': target };
  for (const [field, value] of Object.entries(tune)) params[`blkdeviotune.${field.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`)}`] = value;
  return params;
}

/**
 * libvirt's block jobs (blockcommit, blockpull, blockcopy, blockjob) as async operations, plus blockresize and blkdeviotune.
 * Starting one takes the domain's job lock; the job then runs outside it (the domain stays usable, like libvirt's async jobs).
 */
export class DomainBlockJobs {
  /** Operation id of the job running on each `uuid/target`. */
  private readonly running = new Map<string, string>();

  constructor(private readonly jobs: DomainJobs) {}

  start(id: string, target: string, job: BlockJobStart, operations: OperationManager): Promise<AsyncOperation> {
    return this.jobs.inJob(id, async (stored, driver) => {
      const capability = blockDisk(stored, driver, target);
      const { uuid, name } = stored.config;
      if (this.running.has(`${uuid}/${target}`)) throw new VirtError('OPERATION_INVALID', `disk ${target} of ${name} already has a block job`);
      const controller = new AbortController();
      let progress = (_done: number, _total: number): void => undefined;
      const run = await this.jobs.driverCall(driver, `block.${job.kind}`, stored, () =>
        capability.start(stored, target, job, { signal: controller.signal, onProgress: (done, total) => progress(done, total) }),
      );
      const handle = this.track(stored, target, job.kind, run, controller, operations, job.kind === 'copy' ? (job.format ?? 'qcow2') : undefined);
      progress = (done, total) => handle.progress(done, total);
      return handle.snapshot();
    });
  }

  /**
   * After an agent restart: the block jobs still running on every active domain become operations again (progress,
   * cancel, completion). A copy or active commit adopted this way does not pivot by itself: `blockjob --pivot` does.
   */
  async adoptRunning(operations: OperationManager, onError: (domain: string, error: unknown) => void): Promise<void> {
    for (const stored of [...this.jobs.all()]) {
      const driver = this.jobs.driverFor(stored.config);
      if (!isActive(stored.state) || !driver.blockJobs?.adoptJobs) continue;
      const adoptJobs = driver.blockJobs.adoptJobs.bind(driver.blockJobs);
      try {
        const handles = new Map<string, OperationHandle>();
        const controllers = new Map<string, AbortController>();
        const targets = liveDisksOf(stored).map((disk) => disk.target);
        const adopted = await this.jobs.driverCall(driver, 'block.adopt', stored, () =>
          adoptJobs(stored, targets, (target) => {
            const controller = new AbortController();
            controllers.set(target, controller);
            return { signal: controller.signal, onProgress: (done, total) => handles.get(target)?.progress(done, total) };
          }),
        );
        for (const job of adopted) handles.set(job.target, this.track(stored, job.target, KIND_OF_TYPE[job.type], job, controllers.get(job.target)!, operations, undefined));
      } catch (error) {
        onError(stored.config.name, error);
      }
    }
  }

  /** The operation of a started (or adopted) job: cancel aborts it, its end moves the disk when it pivoted. */
  private track(stored: StoredDomain, target: string, kind: BlockJobStart['kind'], run: BlockJobRun, controller: AbortController, operations: OperationManager, format: LiveDisk['format'] | undefined): OperationHandle {
    const { uuid, name } = stored.config;
    const key = `${uuid}/${target}`;
    const handle = operations.begin(`block ${kind} of ${target} on ${name}`, { domain: uuid });
    handle.signal.addEventListener('abort', () => controller.abort(), { once: true });
    this.running.set(key, handle.id);
    void (async () => {
      try {
        const { activePath } = await run.finished;
        if (activePath) await this.movedTo(uuid, target, activePath, format);
        handle.succeed();
      } catch (error) {
        handle.fail(error);
      } finally {
        this.running.delete(key);
      }
    })();
    return handle;
  }

  async info(id: string, target: string): Promise<BlockJobInfo> {
    const stored = this.jobs.resolve(id);
    const driver = this.jobs.driverFor(stored.config);
    const info = await this.jobs.driverCall(driver, 'block.info', stored, () => blockDisk(stored, driver, target).info(stored, target));
    if (!info) throw new VirtError('NOT_FOUND', `disk ${target} of ${stored.config.name} has no block job`);
    return info;
  }

  /** Cancels the disk's job (through its operation when it is ours), or pivots a ready one. */
  abort(id: string, target: string, pivot: boolean, operations: OperationManager): Promise<Record<string, never>> {
    return this.jobs.inJob(id, async (stored, driver) => {
      const capability = blockDisk(stored, driver, target);
      const operation = this.running.get(`${stored.config.uuid}/${target}`);
      if (operation && !pivot) operations.cancel(operation);
      else {
        if (!(await capability.info(stored, target))) throw new VirtError('NOT_FOUND', `disk ${target} of ${stored.config.name} has no block job`);
        await this.jobs.driverCall(driver, pivot ? 'block.pivot' : 'block.abort', stored, () => capability.abort(stored, target, pivot));
      }
      return {};
    });
  }

  resize(id: string, target: string, sizeBytes: number): Promise<Record<string, never>> {
    if (sizeBytes % 512 !== 0) throw new VirtError('INVALID_ARG', `a disk size must be a multiple of 512 bytes, not ${sizeBytes}`);
    return this.jobs.inJob(id, async (stored, driver) => {
      const capability = blockDisk(stored, driver, target);
      await this.jobs.driverCall(driver, 'block.resize', stored, () => capability.resize(stored, target, sizeBytes));
      return {};
    });
  }

  setIoTune(id: string, target: string, tune: BlockIoTune): Promise<BlockIoTune> {
    return this.jobs.inJob(id, async (stored, driver) => {
      const capability = blockDisk(stored, driver, target);
      const now = await this.jobs.driverCall(driver, 'block.iotune', stored, () => capability.setIoTune(stored, target, tune));
      await this.jobs.domainEvent(stored.config.uuid, 'TUNABLE', { device: target, params: ioTuneParams(target, now) });
      return now;
    });
  }

  /** After a pivot: the running disk reads `path` now; so does the definition when it named the same image (as libvirt rewrites it). */
  private movedTo(uuid: string, target: string, path: string, format: LiveDisk['format']): Promise<unknown> {
    return this.jobs.inJob(uuid, async (stored) => {
      const live = liveDisksOf(stored);
      const before = live.find((disk) => disk.target === target);
      if (!before || (before.source && 'path' in before.source && before.source.path === path)) return;
      const moved = (disk: LiveDisk): LiveDisk => ({ ...disk, source: { path }, ...(format ? { format } : {}) });
      const configIndex = withTargets(stored.config.disks).findIndex((disk) => disk.target === target && JSON.stringify(disk.source) === JSON.stringify(before.source));
      const config = configIndex < 0 ? stored.config : { ...stored.config, disks: stored.config.disks.map((disk, index) => (index === configIndex ? { ...disk, source: { path }, ...(format ? { format } : {}) } : disk)) };
      await this.jobs.saveDevices(uuid, config, live.map((disk) => (disk.target === target ? moved(disk) : disk)), configIndex >= 0);
    });
  }
}

/** The contract's block job bodies as the driver's job description. */
export function blockJobOf<K extends BlockJobStart['kind']>(kind: K, body: Omit<Extract<BlockJobStart, { kind: K }>, 'kind'>): BlockJobStart {
  return { kind, ...body } as BlockJobStart;
}

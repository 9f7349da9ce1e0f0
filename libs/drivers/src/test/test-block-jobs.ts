import { setTimeout as sleep } from 'node:timers/promises';
import { VirtError, type BlockIoTune, type BlockJobInfo } from '@virtbus/api-contract';
import type { BlockJobCapability, BlockJobRun, BlockJobStart, BlockJobWatch, DomainRecord, DriverContext } from '../driver.js';

const TICK_MS = 50;
/** The simulated amount of data a job moves: 64 MiB, 8 MiB a tick unless the bandwidth is lower. */
const JOB_BYTES = 64 * 1024 * 1024;
const STEP_BYTES = 8 * 1024 * 1024;

interface Job {
  info: BlockJobInfo;
  pivot: boolean;
  /** Set by a blockjob pivot or abort. */
  end?: 'pivot' | 'cancel';
}

/** Simulated block jobs: progress over time, READY for copies and active commits, pivots, cancels and BLOCK_JOB events like QEMU's. */
export class TestBlockJobs implements BlockJobCapability {
  private readonly jobs = new Map<string, Job>();
  private readonly tunes = new Map<string, BlockIoTune>();
  private context: DriverContext | undefined;

  init(context: DriverContext): void {
    this.context = context;
  }

  async start(domain: DomainRecord, target: string, job: BlockJobStart, watch: BlockJobWatch): Promise<BlockJobRun> {
    const key = `${domain.config.uuid}/${target}`;
    if (this.jobs.has(key)) throw new VirtError('OPERATION_INVALID', `disk ${target} of ${domain.config.name} already has a block job`);
    const active = job.kind === 'copy' || (job.kind === 'commit' && job.top === undefined);
    const type: BlockJobInfo['type'] = job.kind === 'pull' ? 'PULL' : job.kind === 'copy' ? 'COPY' : active ? 'ACTIVE_COMMIT' : 'COMMIT';
    const entry: Job = {
      info: { target, type, bytesProcessed: 0, bytesTotal: JOB_BYTES, ready: false, bandwidth: job.bandwidth ?? 0 },
      pivot: job.kind === 'commit' || (job.kind === 'copy' && job.pivot === true),
    };
    this.jobs.set(key, entry);
    const moved = job.kind === 'copy' ? job.destination : job.kind === 'commit' && active ? job.base : undefined;
    const finished = this.run(domain, key, entry, watch).then((status) => (status === 'pivot' && moved ? { activePath: moved } : {}));
    return { finished };
  }

  async info(domain: DomainRecord, target: string): Promise<BlockJobInfo | undefined> {
    const job = this.jobs.get(`${domain.config.uuid}/${target}`);
    return job && { ...job.info };
  }

  async abort(domain: DomainRecord, target: string, pivot: boolean): Promise<void> {
    const job = this.jobs.get(`${domain.config.uuid}/${target}`);
    if (!job) throw new VirtError('NOT_FOUND', `disk ${target} of ${domain.config.name} has no block job`);
    if (pivot && !job.info.ready) throw new VirtError('OPERATION_INVALID', `the block job of ${target} is not ready to pivot`);
    job.end = pivot ? 'pivot' : 'cancel';
  }

  async resize(domain: DomainRecord, target: string, sizeBytes: number): Promise<void> {
    if (sizeBytes % 512 !== 0) throw new VirtError('INVALID_ARG', `blockresize of ${target}: ${sizeBytes} is not a multiple of 512`);
    this.running(domain);
  }

  async setIoTune(domain: DomainRecord, target: string, tune: BlockIoTune): Promise<BlockIoTune> {
    this.running(domain);
    const now = { totalBytesSec: 0, readBytesSec: 0, writeBytesSec: 0, totalIopsSec: 0, readIopsSec: 0, writeIopsSec: 0, ...tune };
    this.tunes.set(`${domain.config.uuid}/${target}`, now);
    return now;
  }

  private running(domain: DomainRecord): void {
    if (domain.state !== 'running' && domain.state !== 'paused') throw new VirtError('OPERATION_INVALID', `domain ${domain.config.name} is not running`);
  }

  private async run(domain: DomainRecord, key: string, job: Job, watch: BlockJobWatch): Promise<'pivot' | 'done'> {
    const { info } = job;
    const event = (status: string) => this.context?.domainEvent?.(domain.config.uuid, 'BLOCK_JOB', { device: info.target, jobType: info.type, status });
    try {
      for (;;) {
        await sleep(TICK_MS);
        if (watch.signal.aborted || job.end === 'cancel') {
          event('CANCELED');
          throw new VirtError('OPERATION_FAILED', `block job of ${info.target} was cancelled`);
        }
        const step = info.bandwidth > 0 ? Math.max(1, Math.floor((info.bandwidth * TICK_MS) / 1000)) : STEP_BYTES;
        info.bytesProcessed = Math.min(info.bytesTotal, info.bytesProcessed + step);
        watch.onProgress(info.bytesProcessed, info.bytesTotal);
        if (info.bytesProcessed < info.bytesTotal) continue;
        if (info.type === 'PULL' || info.type === 'COMMIT') {
          event('COMPLETED');
          return 'done';
        }
        if (!info.ready) {
          info.ready = true;
          event('READY');
        }
        if (job.pivot || job.end === 'pivot') {
          event('COMPLETED');
          return 'pivot';
        }
      }
    } finally {
      this.jobs.delete(key);
    }
  }
}

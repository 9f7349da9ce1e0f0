import { BlockIoTune, VirtError, type BlockJobInfo } from '@virtbus/api-contract';
import type { AdoptedBlockJob, BlockJobCapability, BlockJobRun, BlockJobStart, BlockJobWatch, DomainRecord } from '../driver.js';
import { deviceElement, diskSourceOf, diskTargetOf, escapeXml } from './domain-xml.js';
import type { LibvirtDomainAccess } from './libvirt-hotplug.js';
import { AffectFlag, BlockFlag, BlockJobStatus, BlockJobTypeNames, type DomainRef, type TypedParam } from './protocol.js';

const POLL_MS = 200;
/** blkdeviotune's fields and virDomainSetBlockIoTune's parameter names: the same words in snake case (totalBytesSec → total_bytes_sec). */
const IO_TUNE = Object.keys(BlockIoTune.properties).map((ours) => [ours as keyof BlockIoTune, ours.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`)] as const);
/** VIR_TYPED_PARAM_ULLONG */
const ULLONG = 4 as const;

/** One job this driver follows: BLOCK_JOB_2 events of its disk land here. */
interface Follower {
  onStatus(status: number): void;
}

/** The contract's job type of libvirt's virDomainBlockJobType number (BACKUP and unknown ones are not block jobs of the contract). */
function jobType(type: number): BlockJobInfo['type'] | undefined {
  const name = BlockJobTypeNames[type];
  return name === 'PULL' || name === 'COPY' || name === 'COMMIT' || name === 'ACTIVE_COMMIT' ? name : undefined;
}

/**
 * libvirt's block jobs (virDomainBlockCommit, BlockPull / BlockRebase, BlockCopy, BlockJobAbort with PIVOT,
 * GetBlockJobInfo) plus BlockResize and Set/GetBlockIoTune. libvirt names a disk by its target; a job's end comes as a
 * BLOCK_JOB_2 event (the driver hands them to `onEvent`), its progress from GetBlockJobInfo.
 */
export class LibvirtBlockJobs implements BlockJobCapability {
  private readonly followers = new Map<string, Follower>();
  /** `uuid/target` of jobs that reported READY (GetBlockJobInfo has no such field). */
  private readonly ready = new Set<string>();

  constructor(private readonly access: LibvirtDomainAccess) {}

  /** A BLOCK_JOB_2 event: the status of the job on disk `target` of domain `uuid`. */
  onEvent(uuid: string, target: string, status: number): void {
    const key = `${uuid}/${target}`;
    if (status === BlockJobStatus.READY) this.ready.add(key);
    else this.ready.delete(key);
    this.followers.get(key)?.onStatus(status);
  }

  async start(domain: DomainRecord, target: string, job: BlockJobStart, watch: BlockJobWatch): Promise<BlockJobRun> {
    const key = `${domain.config.uuid}/${target}`;
    const client = () => this.access.connection();
    const bandwidth = BigInt(job.bandwidth ?? 0);
    // an active commit and a copy end READY: the commit always pivots onto its base, a copy when asked
    let pivot = false;
    // listening before the job starts: an instant job's end is not missed
    const follower = this.listen(key);
    this.ready.delete(key);
    let dom: DomainRef;
    try {
      dom = await this.access.busyWith(domain, async () => {
        const ref = await this.access.lookup(domain);
        if (job.kind === 'pull') {
          if (job.base) await client().call('domainBlockRebase', { dom: ref, path: target, base: job.base, bandwidth, flags: BlockFlag.PULL_BANDWIDTH_BYTES });
          else await client().call('domainBlockPull', { dom: ref, path: target, bandwidth, flags: BlockFlag.PULL_BANDWIDTH_BYTES });
        } else if (job.kind === 'commit') {
          const activePath = await this.activePath(ref, target);
          pivot = job.top === undefined || job.top === activePath;
          const flags = BlockFlag.COMMIT_BANDWIDTH_BYTES | (pivot ? BlockFlag.COMMIT_ACTIVE : 0);
          await client().call('domainBlockCommit', { dom: ref, disk: target, base: job.base ?? null, top: pivot ? null : job.top!, bandwidth, flags });
        } else {
          pivot = job.pivot === true;
          const destxml = `<disk type='file'><source file='${escapeXml(job.destination)}'/><driver type='${job.format ?? 'qcow2'}'/></disk>`;
          const params: TypedParam[] = job.bandwidth ? [{ field: 'bandwidth', value: { type: ULLONG, value: bandwidth } }] : [];
          await client().call('domainBlockCopy', { dom: ref, path: target, destxml, params, flags: BlockFlag.COPY_TRANSIENT_JOB });
        }
        return ref;
      });
    } catch (error) {
      if (this.followers.get(key) === follower) this.followers.delete(key);
      throw error;
    }
    return { finished: this.follow(key, dom, target, follower, pivot, watch, `block ${job.kind} of ${target} on ${domain.config.name}`) };
  }

  /** After an agent restart: the jobs libvirt still runs on `targets`, followed again to their end (no pivot of their own). */
  async adoptJobs(domain: DomainRecord, targets: readonly string[], watch: (target: string) => BlockJobWatch): Promise<AdoptedBlockJob[]> {
    const dom = await this.access.lookup(domain);
    const adopted: AdoptedBlockJob[] = [];
    for (const target of targets) {
      const key = `${domain.config.uuid}/${target}`;
      const follower = this.listen(key);
      const info = await this.access.connection().call('domainGetBlockJobInfo', { dom, path: target, flags: BlockFlag.INFO_BANDWIDTH_BYTES });
      const type = info.found ? jobType(info.type) : undefined;
      if (!type) {
        this.followers.delete(key);
        continue;
      }
      adopted.push({ target, type, finished: this.follow(key, dom, target, follower, false, watch(target), `block job of ${target} on ${domain.config.name}`) });
    }
    return adopted;
  }

  /** Collects the BLOCK_JOB_2 statuses of one disk; `next` waits for one or a poll interval. */
  private listen(key: string): Follower & { statuses: number[]; next(): Promise<void> } {
    const statuses: number[] = [];
    let wake: () => void = () => undefined;
    const follower = {
      statuses,
      onStatus: (status: number) => (statuses.push(status), wake()),
      next: () =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, POLL_MS);
          wake = () => (clearTimeout(timer), resolve());
        }),
    };
    this.followers.set(key, follower);
    return follower;
  }

  /** Follows a job to its end: progress from GetBlockJobInfo, its end from BLOCK_JOB_2, a pivot once READY when asked, an abort on `signal`. */
  private async follow(key: string, dom: DomainRef, target: string, follower: ReturnType<LibvirtBlockJobs['listen']>, pivot: boolean, watch: BlockJobWatch, what: string): Promise<{ activePath?: string }> {
    const client = () => this.access.connection();
    const cancel = () => void client().call('domainBlockJobAbort', { dom, path: target, flags: 0 }).catch(() => undefined);
    watch.signal.addEventListener('abort', cancel, { once: true });
    let pivoting = false;
    let absent = 0;
    try {
      for (;;) {
        for (const status of follower.statuses.splice(0)) {
          if (status === BlockJobStatus.COMPLETED) return { activePath: await this.activePath(dom, target) };
          if (status === BlockJobStatus.FAILED) throw new VirtError('OPERATION_FAILED', `${what} failed`);
          if (status === BlockJobStatus.CANCELED) throw new VirtError('OPERATION_FAILED', `${what} was cancelled`);
          if (status === BlockJobStatus.READY && pivot && !pivoting && !watch.signal.aborted) {
            pivoting = true;
            await client().call('domainBlockJobAbort', { dom, path: target, flags: BlockFlag.ABORT_PIVOT });
          }
        }
        const info = await client().call('domainGetBlockJobInfo', { dom, path: target, flags: BlockFlag.INFO_BANDWIDTH_BYTES });
        if (info.found) watch.onProgress(Number(info.cur), Number(info.end));
        // no job and no event for it (missed while libvirtd was away): it ended, as the disk shows
        else if (++absent > 25) {
          if (watch.signal.aborted) throw new VirtError('OPERATION_FAILED', `${what} was cancelled`);
          return { activePath: await this.activePath(dom, target) };
        }
        await follower.next();
      }
    } finally {
      watch.signal.removeEventListener('abort', cancel);
      if (this.followers.get(key) === follower) {
        this.followers.delete(key);
        this.ready.delete(key);
      }
    }
  }

  async info(domain: DomainRecord, target: string): Promise<BlockJobInfo | undefined> {
    const dom = await this.access.lookup(domain);
    const info = await this.access.connection().call('domainGetBlockJobInfo', { dom, path: target, flags: BlockFlag.INFO_BANDWIDTH_BYTES });
    const type = info.found ? jobType(info.type) : undefined;
    if (!type) return undefined;
    const ready = this.ready.has(`${domain.config.uuid}/${target}`);
    return { target, type, bytesProcessed: Number(info.cur), bytesTotal: Number(info.end), ready, bandwidth: Number(info.bandwidth) };
  }

  async abort(domain: DomainRecord, target: string, pivot: boolean): Promise<void> {
    await this.access.busyWith(domain, async () => {
      const dom = await this.access.lookup(domain);
      await this.access.connection().call('domainBlockJobAbort', { dom, path: target, flags: pivot ? BlockFlag.ABORT_PIVOT : 0 });
    });
  }

  async resize(domain: DomainRecord, target: string, sizeBytes: number): Promise<void> {
    await this.access.busyWith(domain, async () => {
      const dom = await this.access.lookup(domain);
      await this.access.connection().call('domainBlockResize', { dom, disk: target, size: BigInt(sizeBytes), flags: BlockFlag.RESIZE_BYTES });
    });
  }

  /** Sets the six limits (absent: 0) on the running domain, then reads back those in force. */
  async setIoTune(domain: DomainRecord, target: string, tune: BlockIoTune): Promise<BlockIoTune> {
    return this.access.busyWith(domain, async () => {
      const client = this.access.connection();
      const dom = await this.access.lookup(domain);
      const params = IO_TUNE.map(([ours, field]) => ({ field, value: { type: ULLONG, value: BigInt(tune[ours] ?? 0) } }));
      await client.call('domainSetBlockIoTune', { dom, disk: target, params, flags: AffectFlag.LIVE });
      const { nparams } = await client.call('domainGetBlockIoTune', { dom, disk: target, nparams: 0, flags: AffectFlag.LIVE });
      const now = new Map((await client.call('domainGetBlockIoTune', { dom, disk: target, nparams, flags: AffectFlag.LIVE })).params.map(({ field, value }) => [field, Number(value.value)]));
      return Object.fromEntries(IO_TUNE.map(([ours, field]) => [ours, now.get(field) ?? 0])) as BlockIoTune;
    });
  }

  /** The image the disk runs on now, from libvirt's live XML (moved by a pivot). */
  private async activePath(dom: DomainRef, target: string): Promise<string | undefined> {
    const { xml } = await this.access.connection().call('domainGetXmlDesc', { dom, flags: 0 });
    const disk = deviceElement(xml, 'disk', (body) => diskTargetOf(body) === target);
    return disk ? diskSourceOf(disk) : undefined;
  }
}

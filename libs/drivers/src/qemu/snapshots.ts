import { open, rename, rm } from 'node:fs/promises';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isActive, VirtError, type DomainSnapshot, type SnapshotDisk, type SnapshotKind } from '@virtbus/api-contract';
import type { Logger } from 'pino';
import type { DomainRecord, RunState, SaveRestoreCapability, SnapshotCapability, SnapshotContext, SnapshotReverted, SnapshotTaken } from '../driver.js';
import { encodeSaveHeader, readSaveHeader } from '../save-file.js';
import { afterCommit, commitPlan, filesInUse, overlayPath, withDiskFiles } from '../snapshot-files.js';
import { qemuImgInfo } from '../storage/qemu-img.js';
import { runTool } from '../storage/run.js';
import { diskTargets } from './command-line.js';
import type { QemuInstance } from './instance.js';
import { QmpCommandError, type Qmp } from './qmp/index.js';

/** What the snapshot and save code needs from the QEMU driver's internals. */
export interface QemuSnapshotHost {
  /** The live QEMU of a domain, if it has one. */
  instance(domain: DomainRecord): QemuInstance | undefined;
  busy<T>(instance: QemuInstance, work: () => Promise<T>): Promise<T>;
  /** Spawns the domain's QEMU (vCPUs stopped when paused) with extra arguments. */
  spawn(domain: DomainRecord, paused: boolean, extraArgs?: string[]): Promise<RunState>;
  /** Ends the process; its exit is reported with this reason. */
  end(instance: QemuInstance, reason: 'destroyed' | 'saved' | 'from_snapshot'): Promise<RunState>;
  log(): Logger;
}

interface Disk {
  target: string;
  file: string;
  format: string;
}

const JOB_TIMEOUT_MS = 600_000;

/** Writable file-backed disks: the ones a snapshot covers (cdroms and read-only disks are left alone). */
function writableDisks(domain: DomainRecord): Disk[] {
  const targets = diskTargets(domain.config.disks);
  return domain.config.disks.flatMap((disk, index) => {
    if (disk.device === 'cdrom' || disk.readonly) return [];
    if (!('path' in disk.source)) throw new VirtError('OPERATION_UNSUPPORTED', `disk ${targets[index]} is a pool volume; snapshots need file disks`);
    return [{ target: targets[index] as string, file: disk.source.path, format: disk.format ?? 'qcow2' }];
  });
}

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", "'\\''")}'`;
}

const qemuImg = (...args: string[]) => runTool('qemu-img', args);

/**
 * Snapshots and save/restore for QEMU domains. Internal snapshots are qcow2 snapshots (with RAM via the
 * snapshot-save/-load jobs while running; qemu-img when shut off). External snapshots put a new qcow2 overlay on
 * every writable disk (blockdev-snapshot while running); reverting to one discards the overlay written after it and
 * starts a fresh overlay on the snapshot's image: a running domain is restarted on it (disk-only: the guest boots).
 * Deleting an external snapshot commits its overlay down into its image (block-commit / qemu-img commit).
 */
export class QemuSnapshots implements SnapshotCapability, SaveRestoreCapability {
  constructor(private readonly host: QemuSnapshotHost) {}

  async createSnapshot(domain: DomainRecord, request: { name: string; kind: SnapshotKind }): Promise<SnapshotTaken> {
    const instance = this.activeInstance(domain);
    if (!instance && domain.state !== 'shutoff') throw new VirtError('OPERATION_INVALID', `cannot snapshot domain ${domain.config.name}: it is ${domain.state}`);
    const disks = writableDisks(domain);
    if (request.kind === 'internal') {
      const raw = disks.find((disk) => disk.format !== 'qcow2');
      if (raw) throw new VirtError('OPERATION_UNSUPPORTED', `internal snapshots need qcow2 disks; ${raw.target} is ${raw.format}`);
      if (disks.length === 0 && !instance) throw new VirtError('OPERATION_INVALID', `domain ${domain.config.name} has no disk to snapshot`);
      if (!instance) {
        for (const disk of disks) await qemuImg('snapshot', '-c', request.name, disk.file);
        return { state: domain.state, memory: false, disks: disks.map(({ target, file }) => ({ target, file })) };
      }
      if (disks.length === 0) throw new VirtError('OPERATION_UNSUPPORTED', 'a snapshot with memory needs a qcow2 disk to hold it');
      await this.host.busy(instance, async () => {
        const nodes = await this.topNodes(instance, disks);
        await this.runJob(instance, 'snapshot-save', (qmp, id) => qmp.snapshots.snapshotSave({ 'job-id': id, tag: request.name, vmstate: nodes[0]!, devices: nodes }));
      });
      return { state: domain.state, memory: true, disks: disks.map(({ target, file }) => ({ target, file })) };
    }
    if (disks.length === 0) throw new VirtError('OPERATION_INVALID', `domain ${domain.config.name} has no writable disk to snapshot`);
    const taken: SnapshotDisk[] = disks.map((disk) => ({ target: disk.target, file: disk.file, overlay: overlayPath(disk.file, domain.config.name, disk.target, request.name) }));
    const created: string[] = [];
    try {
      for (const [index, disk] of disks.entries()) {
        const overlay = taken[index]!.overlay!;
        const size = (await qemuImgInfo(disk.file, { format: disk.format as 'qcow2' | 'raw' })).virtualSize;
        await qemuImg('create', '-q', '-f', 'qcow2', '-F', disk.format, '-b', disk.file, '-u', overlay, String(size));
        created.push(overlay);
      }
      if (instance) await this.host.busy(instance, () => this.liveOverlays(instance, disks, created));
    } catch (error) {
      await Promise.all(created.map((file) => rm(file, { force: true })));
      throw this.failure(error, `external snapshot of ${domain.config.name}`);
    }
    const config = withDiskFiles(domain.config, diskTargets(domain.config.disks), new Map(taken.map((disk) => [disk.target, disk.overlay!])));
    return { state: domain.state, memory: false, disks: taken, config };
  }

  async revertSnapshot(domain: DomainRecord, snapshot: DomainSnapshot, context: SnapshotContext): Promise<SnapshotReverted> {
    const instance = this.activeInstance(domain);
    const disks = writableDisks(domain);
    if (snapshot.kind === 'internal') {
      for (const disk of snapshot.disks) {
        if (!disks.some((current) => current.target === disk.target && current.file === disk.file)) {
          throw new VirtError('OPERATION_INVALID', `disk ${disk.target} no longer uses ${disk.file} (an external snapshot came after ${snapshot.name})`);
        }
      }
      const nodesOf = (live: QemuInstance) => this.topNodes(live, disks.filter((disk) => snapshot.disks.some((entry) => entry.target === disk.target)));
      if (!snapshot.memory) {
        const through: RunState[] = [];
        if (instance) through.push(await this.host.end(instance, 'from_snapshot'));
        for (const disk of snapshot.disks) await qemuImg('snapshot', '-a', snapshot.name, disk.file);
        return { run: { state: 'shutoff', reason: 'from_snapshot', runtime: null }, through };
      }
      const wantPaused = snapshot.state === 'paused';
      if (instance) {
        await this.host.busy(instance, async () => {
          const nodes = await nodesOf(instance);
          await this.runJob(instance, 'snapshot-load', (qmp, id) => qmp.snapshots.snapshotLoad({ 'job-id': id, tag: snapshot.name, vmstate: nodes[0]!, devices: nodes }));
          const { status } = await instance.qmp!.lifecycle.queryStatus();
          if (wantPaused && status === 'running') await instance.qmp!.lifecycle.stop();
          if (!wantPaused && status !== 'running') await instance.qmp!.lifecycle.cont();
        });
        return {
          run: wantPaused ? { state: 'paused', reason: 'from_snapshot' } : { state: 'running', reason: 'from_snapshot' },
          through: [{ state: 'paused', reason: 'from_snapshot' }],
        };
      }
      const started = await this.host.spawn({ ...domain, state: 'shutoff' }, true);
      const live = this.host.instance({ ...domain, runtime: started.runtime ?? undefined });
      if (!live) throw new VirtError('OPERATION_FAILED', `QEMU of ${domain.config.name} went away during the revert`);
      try {
        await this.host.busy(live, async () => {
          const nodes = await nodesOf(live);
          await this.runJob(live, 'snapshot-load', (qmp, id) => qmp.snapshots.snapshotLoad({ 'job-id': id, tag: snapshot.name, vmstate: nodes[0]!, devices: nodes }));
          if (!wantPaused) await live.qmp!.lifecycle.cont();
        });
      } catch (error) {
        await this.host.end(live, 'destroyed').catch(() => undefined);
        throw this.failure(error, `revert of ${domain.config.name} to ${snapshot.name}`);
      }
      return { run: { state: wantPaused ? 'paused' : 'running', reason: 'from_snapshot', ...(started.runtime ? { runtime: started.runtime } : {}) } };
    }

    // external: stop (if running), drop the unreferenced top overlay, start a fresh overlay on the snapshot's image
    const keep = filesInUse(context.all);
    const discard = disks.filter((disk) => !keep.has(disk.file) && basename(disk.file).startsWith(`${domain.config.name}-${disk.target}.`)).map((disk) => disk.file);
    const through: RunState[] = [];
    if (instance) through.push(await this.host.end(instance, 'from_snapshot'));
    const fresh = snapshot.disks.map((disk) => ({ ...disk, overlay: overlayPath(disk.file, domain.config.name, disk.target, snapshot.name, true) }));
    for (const disk of fresh) {
      const format = (await qemuImgInfo(disk.file)).format;
      await qemuImg('create', '-q', '-f', 'qcow2', '-F', format, '-b', disk.file, disk.overlay);
    }
    await Promise.all(discard.map((file) => rm(file, { force: true })));
    const config = withDiskFiles(domain.config, diskTargets(domain.config.disks), new Map(fresh.map((disk) => [disk.target, disk.overlay])));
    const updated = { [snapshot.name]: fresh };
    if (!instance) return { run: { state: domain.state, reason: domain.reason }, config, updated };
    const started = await this.host.spawn({ ...domain, config, state: 'shutoff', reason: 'from_snapshot' }, false);
    return { run: { ...started, state: 'running', reason: 'from_snapshot' }, through, config, updated };
  }

  async deleteSnapshot(domain: DomainRecord, snapshot: DomainSnapshot, context: SnapshotContext): Promise<Omit<SnapshotReverted, 'run'>> {
    const instance = this.activeInstance(domain);
    if (snapshot.kind === 'internal') {
      for (const disk of snapshot.disks) {
        if (instance) {
          await this.host.busy(instance, async () => {
            const node = await this.nodeForFile(instance, disk.file);
            if (!node) throw new VirtError('OPERATION_FAILED', `${disk.file} is not open in QEMU`);
            await this.runJob(instance, 'snapshot-delete', (qmp, id) => qmp.snapshots.snapshotDelete({ 'job-id': id, tag: snapshot.name, devices: [node] }));
          });
        } else {
          await qemuImg('snapshot', '-d', snapshot.name, disk.file);
        }
      }
      return {};
    }
    const disks = writableDisks(domain);
    const active = new Map(disks.map((disk) => [disk.target, disk.file]));
    const plan = commitPlan(snapshot, context.all, active);
    for (const [target, step] of plan) {
      if (instance) {
        await this.host.busy(instance, () => this.liveCommit(instance, disks.find((disk) => disk.target === target)!, step));
      } else {
        await qemuImg('commit', '-q', '-d', step.from);
        // the image that sat on the merged overlay now sits on the image it was merged into
        const candidates = new Set([active.get(target), ...context.all.flatMap((other) => other.disks.filter((entry) => entry.target === target).map((entry) => entry.file))]);
        for (const file of candidates) {
          if (!file || file === step.from || file === step.into) continue;
          const info = await qemuImgInfo(file).catch(() => undefined);
          if (info?.backingChain[0]?.path === step.from) await qemuImg('rebase', '-u', '-F', 'qcow2', '-b', step.into, file);
        }
      }
      await rm(step.from, { force: true });
    }
    return afterCommit(snapshot, context.all, domain.config, diskTargets(domain.config.disks), plan);
  }

  async save(domain: DomainRecord, path: string): Promise<RunState> {
    const instance = this.activeInstance(domain);
    if (!instance || (domain.state !== 'running' && domain.state !== 'paused')) {
      throw new VirtError('OPERATION_INVALID', `cannot save domain ${domain.config.name}: it is ${domain.state}`);
    }
    const partial = `${path}.partial`;
    const handle = await open(partial, 'w', 0o600);
    await handle.writeFile(encodeSaveHeader({ config: domain.config, state: domain.state, createdAt: new Date().toISOString() }));
    await handle.close();
    try {
      await this.host.busy(instance, async () => {
        const qmp = instance.qmp!;
        // the guest stops first, so the file holds one consistent state and the stream ends after one pass
        await qmp.lifecycle.stop();
        await qmp.migration.migrateSetParameters({ 'max-bandwidth': 0x7fffffff });
        await qmp.migration.migrate(`exec:cat >> ${shellQuote(partial)}`);
        await this.awaitMigration(instance, 'save');
      });
    } catch (error) {
      await rm(partial, { force: true });
      if (domain.state === 'running') await instance.qmp?.lifecycle.cont().catch(() => undefined);
      throw this.failure(error, `save of ${domain.config.name}`);
    }
    await rename(partial, path);
    await this.host.end(instance, 'saved');
    return { state: 'shutoff', reason: 'saved', runtime: null };
  }

  async restore(domain: DomainRecord, path: string, options: { paused: boolean }): Promise<RunState> {
    if (this.activeInstance(domain) || isActive(domain.state)) throw new VirtError('OPERATION_INVALID', `domain ${domain.config.name} is already ${domain.state}`);
    const { header, payloadOffset } = await readSaveHeader(path);
    if (header.config.uuid !== domain.config.uuid) throw new VirtError('INVALID_ARG', `${path} holds domain ${header.config.name}, not ${domain.config.name}`);
    // the device model must be the one that was saved: QEMU runs with the saved definition
    const record: DomainRecord = { ...domain, config: { ...domain.config, ...header.config }, state: 'shutoff' };
    const started = await this.host.spawn(record, true, ['-incoming', 'defer']);
    const instance = this.host.instance({ ...record, runtime: started.runtime ?? undefined });
    if (!instance) throw new VirtError('OPERATION_FAILED', `QEMU of ${domain.config.name} went away during the restore`);
    const paused = options.paused || header.state === 'paused';
    try {
      await this.host.busy(instance, async () => {
        await instance.qmp!.migration.migrateIncoming(`exec:tail -c +${payloadOffset + 1} ${shellQuote(path)}`);
        await this.awaitMigration(instance, 'restore');
        if (!paused) await instance.qmp!.lifecycle.cont();
      });
    } catch (error) {
      await this.host.end(instance, 'destroyed').catch(() => undefined);
      throw this.failure(error, `restore of ${domain.config.name}`);
    }
    const runtime = started.runtime ? { runtime: started.runtime } : {};
    return paused ? { state: 'paused', reason: 'user', ...runtime } : { state: 'running', reason: 'restored', ...runtime };
  }

  private activeInstance(domain: DomainRecord): QemuInstance | undefined {
    const instance = this.host.instance(domain);
    if (!instance || instance.hasExited) return undefined;
    if (!instance.qmp || instance.qmp.closed) throw new VirtError('OPERATION_FAILED', `domain ${domain.config.name}: QMP is not connected`);
    return instance;
  }

  /** The node at the top of each disk's chain (our fmt-<target> until an external snapshot puts an overlay on it). */
  private async topNodes(instance: QemuInstance, disks: readonly Disk[]): Promise<string[]> {
    const blocks = await instance.qmp!.block.queryBlock();
    return disks.map((disk) => {
      const block = blocks.find((entry) => entry.qdev === disk.target || entry.qdev?.startsWith(`/machine/peripheral/${disk.target}/`));
      const node = block?.inserted?.['node-name'];
      if (!node) throw new VirtError('OPERATION_FAILED', `QEMU has no block node for disk ${disk.target}`);
      return node;
    });
  }

  private async nodeForFile(instance: QemuInstance, file: string): Promise<string | undefined> {
    const nodes = await instance.qmp!.block.queryNamedBlockNodes();
    return nodes.find((node) => node.file === file && node.drv === 'qcow2')?.['node-name'];
  }

  private async liveOverlays(instance: QemuInstance, disks: readonly Disk[], overlays: readonly string[]): Promise<void> {
    const qmp = instance.qmp!;
    const tops = await this.topNodes(instance, disks);
    const stamp = Date.now().toString(36);
    const names = disks.map((disk) => `ov-${disk.target}-${stamp}`);
    const added: string[] = [];
    try {
      for (const [index, overlay] of overlays.entries()) {
        await qmp.block.blockdevAdd({ driver: 'qcow2', 'node-name': names[index]!, file: { driver: 'file', filename: overlay }, backing: null });
        added.push(names[index]!);
      }
      await qmp.snapshots.blockdevSnapshots(tops.map((node, index) => ({ node, overlay: names[index]! })));
    } catch (error) {
      for (const node of added) await qmp.block.blockdevDel(node).catch(() => undefined);
      throw error;
    }
  }

  /** Merges `from` into `into` in a running QEMU: an active commit (then pivot) when `from` is the disk's top. */
  private async liveCommit(instance: QemuInstance, disk: Disk, step: { from: string; into: string }): Promise<void> {
    const [top] = await this.topNodes(instance, [disk]);
    const fromNode = await this.nodeForFile(instance, step.from);
    const intoNode = await this.nodeForFile(instance, step.into);
    if (!fromNode || !intoNode) throw new VirtError('OPERATION_FAILED', `${step.from} or ${step.into} is not in the running chain of ${disk.target}`);
    const topNode = fromNode === top ? {} : { 'top-node': fromNode };
    await this.runJob(instance, 'block-commit', (qmp, id) => qmp.jobs.blockCommit({ 'job-id': id, device: top!, 'base-node': intoNode, ...topNode, 'auto-dismiss': false }));
  }

  /** Starts a job (`command` names it in ids and errors), runs it to its end (completing a block job once ready) and reports its error. */
  private async runJob(instance: QemuInstance, command: string, start: (qmp: Qmp, jobId: string) => Promise<void>): Promise<void> {
    const qmp = instance.qmp!;
    const id = `${command}-${Date.now().toString(36)}`;
    await start(qmp, id);
    const deadline = Date.now() + JOB_TIMEOUT_MS;
    let completed = false;
    for (;;) {
      const job = (await qmp.jobs.queryJobs()).find((entry) => entry.id === id);
      if (!job) throw new VirtError('OPERATION_FAILED', `${command} job vanished`);
      if (job.status === 'ready' && !completed) {
        await qmp.jobs.jobComplete(id);
        completed = true;
      }
      if (job.status === 'concluded') {
        await qmp.jobs.jobDismiss(id);
        if (job.error) throw new VirtError('OPERATION_FAILED', `${command}: ${job.error}`);
        return;
      }
      if (Date.now() > deadline) throw new VirtError('OPERATION_TIMEOUT', `${command} did not finish in time`);
      await sleep(20);
    }
  }

  private async awaitMigration(instance: QemuInstance, what: string): Promise<void> {
    for (;;) {
      const info = await instance.qmp!.migration.queryMigrate();
      if (info.status === 'completed') return;
      if (info.status === 'failed' || info.status === 'cancelled') throw new VirtError('OPERATION_FAILED', `${what} failed: ${info['error-desc'] ?? info.status}`);
      await sleep(50);
    }
  }

  private failure(error: unknown, what: string): VirtError {
    if (error instanceof VirtError) return error;
    if (error instanceof QmpCommandError) return new VirtError('OPERATION_FAILED', `${what}: ${error.desc}`, { cause: error });
    return new VirtError('OPERATION_FAILED', `${what}: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  }
}

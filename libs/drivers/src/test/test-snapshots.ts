import { readFile } from 'node:fs/promises';
import { isActive, VirtError, type DomainSnapshot, type SnapshotKind } from '@virtbus/api-contract';
import type { DomainRecord, RunState, SaveRestoreCapability, SnapshotCapability, SnapshotContext, SnapshotReverted, SnapshotTaken } from '../driver.js';
import { diskTargets } from '../qemu/command-line.js';
import { readSaveHeader, writeSaveFile } from '../save-file.js';
import { afterCommit, commitPlan, overlayPath, withDiskFiles } from '../snapshot-files.js';

/** What the test driver lets its snapshot and save code do to a simulated domain. */
export interface TestDomainHooks {
  booted(domain: DomainRecord, banner: string): void;
  stopped(domain: DomainRecord): void;
}

function diskFiles(domain: DomainRecord): { target: string; file: string }[] {
  const targets = diskTargets(domain.config.disks);
  return domain.config.disks.flatMap((disk, index) => ('path' in disk.source && disk.device !== 'cdrom' && !disk.readonly ? [{ target: targets[index] as string, file: disk.source.path }] : []));
}

/** Snapshot semantics without images: the metadata, disk paths and state changes a real driver would produce. */
export class TestSnapshots implements SnapshotCapability, SaveRestoreCapability {
  constructor(private readonly hooks: TestDomainHooks) {}

  async createSnapshot(domain: DomainRecord, request: { name: string; kind: SnapshotKind }): Promise<SnapshotTaken> {
    const active = isActive(domain.state);
    if (!active && domain.state !== 'shutoff') throw new VirtError('OPERATION_INVALID', `cannot snapshot domain ${domain.config.name}: it is ${domain.state}`);
    const files = diskFiles(domain);
    if (request.kind === 'internal') return { state: domain.state, memory: active, disks: files };
    const disks = files.map(({ target, file }) => ({ target, file, overlay: overlayPath(file, domain.config.name, target, request.name) }));
    const config = withDiskFiles(domain.config, diskTargets(domain.config.disks), new Map(disks.map((disk) => [disk.target, disk.overlay])));
    return { state: domain.state, memory: false, disks, config };
  }

  async revertSnapshot(domain: DomainRecord, snapshot: DomainSnapshot): Promise<SnapshotReverted> {
    const active = isActive(domain.state);
    const reverted: RunState = { state: 'running', reason: 'from_snapshot' };
    if (snapshot.kind === 'internal') {
      if (!snapshot.memory) {
        if (active) this.hooks.stopped(domain);
        return { run: { state: 'shutoff', reason: 'from_snapshot' } };
      }
      if (!active) this.hooks.booted(domain, `virtbus test domain ${domain.config.name} resumed from snapshot ${snapshot.name}`);
      const run: RunState = snapshot.state === 'paused' ? { state: 'paused', reason: 'from_snapshot' } : reverted;
      return { run, ...(active ? { through: [{ state: 'paused', reason: 'from_snapshot' }] } : {}) };
    }
    const overlays = snapshot.disks.map((disk) => ({ ...disk, overlay: overlayPath(disk.file, domain.config.name, disk.target, snapshot.name, true) }));
    const config = withDiskFiles(domain.config, diskTargets(domain.config.disks), new Map(overlays.map((disk) => [disk.target, disk.overlay])));
    const updated = { [snapshot.name]: overlays };
    if (!active) return { run: { state: domain.state, reason: domain.reason }, config, updated };
    this.hooks.stopped(domain);
    this.hooks.booted(domain, `virtbus test domain ${domain.config.name} booted from snapshot ${snapshot.name}`);
    return { run: reverted, through: [{ state: 'shutoff', reason: 'from_snapshot' }], config, updated };
  }

  async deleteSnapshot(domain: DomainRecord, snapshot: DomainSnapshot, context: SnapshotContext): Promise<Omit<SnapshotReverted, 'run'>> {
    if (snapshot.kind === 'internal') return {};
    const active = new Map(diskFiles(domain).map(({ target, file }) => [target, file]));
    const plan = commitPlan(snapshot, context.all, active);
    return afterCommit(snapshot, context.all, domain.config, diskTargets(domain.config.disks), plan);
  }

  async save(domain: DomainRecord, path: string): Promise<RunState> {
    if (domain.state !== 'running' && domain.state !== 'paused') throw new VirtError('OPERATION_INVALID', `cannot save domain ${domain.config.name}: it is ${domain.state}`);
    const payload = Buffer.from(JSON.stringify({ driver: 'test', savedAt: new Date().toISOString() }));
    await writeSaveFile(path, { config: domain.config, state: domain.state, createdAt: new Date().toISOString() }, payload);
    this.hooks.stopped(domain);
    return { state: 'shutoff', reason: 'saved' };
  }

  async restore(domain: DomainRecord, path: string, options: { paused: boolean }): Promise<RunState> {
    if (isActive(domain.state)) throw new VirtError('OPERATION_INVALID', `domain ${domain.config.name} is already ${domain.state}`);
    const { header, payloadOffset } = await readSaveHeader(path);
    if (header.config.uuid !== domain.config.uuid) throw new VirtError('INVALID_ARG', `${path} holds domain ${header.config.name}, not ${domain.config.name}`);
    const payload = JSON.parse((await readFile(path)).subarray(payloadOffset).toString('utf8')) as { driver?: string };
    if (payload.driver !== 'test') throw new VirtError('INVALID_ARG', `${path} was not written by the test driver`);
    this.hooks.booted(domain, `virtbus test domain ${domain.config.name} restored`);
    return options.paused || header.state === 'paused' ? { state: 'paused', reason: 'user' } : { state: 'running', reason: 'restored' };
  }
}

import { dirname, join } from 'node:path';
import { VirtError, type DomainConfig, type DomainSnapshot } from '@virtbus/api-contract';

/** Overlay file for an external snapshot (or a revert onto one), beside the image it sits on. */
export function overlayPath(frozenFile: string, domainName: string, target: string, snapshot: string, revert = false): string {
  const suffix = revert ? `.revert-${Date.now().toString(36)}` : '';
  return join(dirname(frozenFile), `${domainName}-${target}.${snapshot}${suffix}.qcow2`);
}

/** The config with each disk (by target) pointing at a new file in qcow2 format. */
export function withDiskFiles(config: DomainConfig, targets: readonly string[], files: ReadonlyMap<string, string>): DomainConfig {
  return {
    ...config,
    disks: config.disks.map((disk, index) => {
      const file = files.get(targets[index] as string);
      return file ? { ...disk, source: { path: file }, format: 'qcow2' as const } : disk;
    }),
  };
}

/** Files some snapshot still needs: internal snapshots' images and external snapshots' frozen images. */
export function filesInUse(snapshots: readonly DomainSnapshot[], except?: string): Set<string> {
  const files = new Set<string>();
  for (const snapshot of snapshots) {
    if (snapshot.name === except) continue;
    for (const disk of snapshot.disks) files.add(disk.file);
  }
  return files;
}

/**
 * Deleting external snapshot S whose overlay O sits directly on its frozen image F: O's data is merged down into F
 * (commit), so whatever pointed at O (the active disk, a child's frozen image) now points at F.
 */
export function afterCommit(
  snapshot: DomainSnapshot,
  all: readonly DomainSnapshot[],
  config: DomainConfig,
  targets: readonly string[],
  merged: ReadonlyMap<string, { from: string; into: string }>,
): { config?: DomainConfig; updated: Record<string, DomainSnapshot['disks']> } {
  const updated: Record<string, DomainSnapshot['disks']> = {};
  for (const other of all) {
    if (other.name === snapshot.name) continue;
    let changed = false;
    const disks = other.disks.map((disk) => {
      const step = merged.get(disk.target);
      if (!step) return disk;
      const next = { ...disk };
      if (disk.file === step.from) {
        next.file = step.into;
        changed = true;
      }
      if (disk.overlay === step.from) {
        next.overlay = step.into;
        changed = true;
      }
      return next;
    });
    if (changed) updated[other.name] = disks;
  }
  const files = new Map<string, string>();
  config.disks.forEach((disk, index) => {
    const step = merged.get(targets[index] as string);
    if (step && 'path' in disk.source && disk.source.path === step.from) files.set(targets[index] as string, step.into);
  });
  return { ...(files.size > 0 ? { config: withDiskFiles(config, targets, files) } : {}), updated };
}

/**
 * Which overlay to merge into which frozen image to delete an external snapshot, per disk target. Only the straight
 * case is handled: every child built on the snapshot's overlay; a branch (a revert made a second overlay on the
 * frozen image) or an internal snapshot inside the overlay would be destroyed by a commit, so those are refused.
 */
export function commitPlan(
  snapshot: DomainSnapshot,
  all: readonly DomainSnapshot[],
  activeFiles: ReadonlyMap<string, string>,
): Map<string, { from: string; into: string }> {
  const plan = new Map<string, { from: string; into: string }>();
  const children = all.filter((other) => other.parent === snapshot.name);
  for (const disk of snapshot.disks) {
    if (!disk.overlay) continue;
    const overlay = disk.overlay;
    for (const other of all) {
      const theirs = other.disks.find((entry) => entry.target === disk.target);
      if (!theirs || other.name === snapshot.name) continue;
      if (other.kind === 'internal' && theirs.file === overlay) {
        throw new VirtError('OPERATION_UNSUPPORTED', `snapshot ${other.name} lives inside ${overlay}: delete it before ${snapshot.name}`);
      }
    }
    for (const child of children) {
      const theirs = child.disks.find((entry) => entry.target === disk.target);
      if (child.kind === 'external' && theirs && theirs.file !== overlay) {
        throw new VirtError('OPERATION_UNSUPPORTED', `snapshot ${snapshot.name} has branches (after a revert): delete ${child.name} first, or delete only the metadata`);
      }
    }
    const inUse = activeFiles.get(disk.target) === overlay || all.some((other) => other.disks.some((entry) => entry.target === disk.target && entry.file === overlay));
    if (inUse) plan.set(disk.target, { from: overlay, into: disk.file });
  }
  return plan;
}

import { VirtError, type DomainSnapshot } from '@virtbus/api-contract';

/** What the agent stores per snapshot; children and `current` are derived from the whole set. */
export type SnapshotRecord = Omit<DomainSnapshot, 'children' | 'current'>;

export interface SnapshotSet {
  current?: string;
  snapshots: SnapshotRecord[];
}

const byCreation = (a: SnapshotRecord, b: SnapshotRecord) => a.createdAt.localeCompare(b.createdAt) || a.name.localeCompare(b.name);

/** Parents before children, siblings oldest first (depth-first, like `virsh snapshot-list --tree`). */
export function treeOrder(set: SnapshotSet): DomainSnapshot[] {
  const names = new Set(set.snapshots.map((snapshot) => snapshot.name));
  const children = new Map<string | undefined, SnapshotRecord[]>();
  for (const snapshot of [...set.snapshots].sort(byCreation)) {
    // A parent that vanished (damaged metadata) makes its children roots rather than invisible.
    const parent = snapshot.parent !== undefined && names.has(snapshot.parent) ? snapshot.parent : undefined;
    children.set(parent, [...(children.get(parent) ?? []), snapshot]);
  }
  const ordered: DomainSnapshot[] = [];
  const visit = (snapshot: SnapshotRecord) => {
    const kids = children.get(snapshot.name) ?? [];
    ordered.push({ ...snapshot, children: kids.map((kid) => kid.name), current: snapshot.name === set.current });
    kids.forEach(visit);
  };
  (children.get(undefined) ?? []).forEach(visit);
  return ordered;
}

export function find(set: SnapshotSet, name: string): SnapshotRecord {
  const snapshot = set.snapshots.find((candidate) => candidate.name === name);
  if (!snapshot) throw new VirtError('NOT_FOUND', `no snapshot ${name}`);
  return snapshot;
}

export function viewOf(set: SnapshotSet, name: string): DomainSnapshot {
  find(set, name);
  return treeOrder(set).find((snapshot) => snapshot.name === name)!;
}

/** A new snapshot becomes a child of the current one and the new current. */
export function added(set: SnapshotSet, snapshot: SnapshotRecord): SnapshotSet {
  if (set.snapshots.some((existing) => existing.name === snapshot.name)) throw new VirtError('OPERATION_INVALID', `snapshot ${snapshot.name} already exists`);
  const record: SnapshotRecord = { ...snapshot };
  if (set.current !== undefined) record.parent = set.current;
  else delete record.parent;
  return { current: snapshot.name, snapshots: [...set.snapshots, record] };
}

/** Descendants of `name`, deepest first, so each can be deleted while its parent still exists. */
export function descendants(set: SnapshotSet, name: string): string[] {
  const result: string[] = [];
  const visit = (parent: string) => {
    for (const child of set.snapshots.filter((snapshot) => snapshot.parent === parent)) {
      visit(child.name);
      result.push(child.name);
    }
  };
  visit(name);
  return result;
}

/** Forgets one snapshot: its children move up to its parent, and so does `current`. */
export function removed(set: SnapshotSet, name: string): SnapshotSet {
  const gone = find(set, name);
  const snapshots = set.snapshots
    .filter((snapshot) => snapshot.name !== name)
    .map((snapshot) => {
      if (snapshot.parent !== name) return snapshot;
      const moved: SnapshotRecord = { ...snapshot };
      if (gone.parent !== undefined) moved.parent = gone.parent;
      else delete moved.parent;
      return moved;
    });
  const current = set.current === name ? gone.parent : set.current;
  return current === undefined ? { snapshots } : { current, snapshots };
}

/** Replaces disk records of snapshots a driver rewrote (an image merged into another). */
export function withDisks(set: SnapshotSet, updated: Record<string, SnapshotRecord['disks']> | undefined): SnapshotSet {
  if (!updated) return set;
  return { ...set, snapshots: set.snapshots.map((snapshot) => (updated[snapshot.name] ? { ...snapshot, disks: updated[snapshot.name]! } : snapshot)) };
}

/** A default name like libvirt's: the creation time in seconds. */
export function defaultName(now = Date.now()): string {
  return String(Math.floor(now / 1000));
}

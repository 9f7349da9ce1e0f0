import { describe, expect, it } from 'vitest';
import { added, descendants, removed, treeOrder, viewOf, withDisks, type SnapshotRecord, type SnapshotSet } from './tree.js';

const DOMAIN = '6f0f5c0e-8a0e-4a4e-9a59-2a5c6ad2f001';
let clock = 0;
const snap = (name: string): SnapshotRecord => ({
  name,
  domain: DOMAIN,
  kind: 'internal',
  state: 'running',
  memory: true,
  createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, clock++)).toISOString(),
  disks: [{ target: 'vda', file: '/d/a.qcow2' }],
});

function build(): SnapshotSet {
  // a → b → c, then revert to a (current = a) and take d: a has children b and d
  let set: SnapshotSet = { snapshots: [] };
  set = added(set, snap('a'));
  set = added(set, snap('b'));
  set = added(set, snap('c'));
  set = { ...set, current: 'a' };
  set = added(set, snap('d'));
  return set;
}

describe('snapshot tree', () => {
  it('links each new snapshot under the current one and lists parents before children', () => {
    const set = build();
    const tree = treeOrder(set);
    expect(tree.map((s) => s.name)).toEqual(['a', 'b', 'c', 'd']);
    expect(tree.map((s) => s.parent)).toEqual([undefined, 'a', 'b', 'a']);
    expect(viewOf(set, 'a').children).toEqual(['b', 'd']);
    expect(tree.filter((s) => s.current).map((s) => s.name)).toEqual(['d']);
    expect(() => added(set, snap('b'))).toThrow(/already exists/);
  });

  it('deletes one snapshot by moving its children and current to its parent', () => {
    let set = build();
    set = removed(set, 'b');
    expect(viewOf(set, 'c').parent).toBe('a');
    expect(viewOf(set, 'a').children).toEqual(['c', 'd']);
    set = removed(set, 'd');
    expect(set.current).toBe('a');
    set = removed(set, 'a');
    expect(set.current).toBeUndefined();
    expect(treeOrder(set).map((s) => [s.name, s.parent])).toEqual([['c', undefined]]);
  });

  it('orders descendants deepest first for deleting a subtree', () => {
    expect(descendants(build(), 'a')).toEqual(['c', 'b', 'd']);
    expect(descendants(build(), 'c')).toEqual([]);
  });

  it('shows a snapshot whose parent vanished as a root', () => {
    const set: SnapshotSet = { snapshots: [{ ...snap('x'), parent: 'gone' }] };
    expect(treeOrder(set).map((s) => s.name)).toEqual(['x']);
  });

  it('takes disk records a driver rewrote', () => {
    const set = withDisks(build(), { c: [{ target: 'vda', file: '/d/merged.qcow2' }] });
    expect(viewOf(set, 'c').disks[0]?.file).toBe('/d/merged.qcow2');
    expect(viewOf(set, 'b').disks[0]?.file).toBe('/d/a.qcow2');
  });
});

import type { DomainConfig, DomainSnapshot } from '@virtbus/api-contract';
import { describe, expect, it } from 'vitest';
import { afterCommit, commitPlan, filesInUse, overlayPath } from './snapshot-files.js';

const UUID = '6f0f5c0e-8a0e-4a4e-9a59-2a5c6ad2f001';
const snap = (name: string, kind: DomainSnapshot['kind'], file: string, overlay?: string, parent?: string): DomainSnapshot => ({
  name,
  domain: UUID,
  kind,
  state: 'running',
  memory: false,
  ...(parent ? { parent } : {}),
  children: [],
  current: false,
  createdAt: '2026-01-01T00:00:00.000Z',
  disks: [{ target: 'vda', file, ...(overlay ? { overlay } : {}) }],
});
const config = (path: string): DomainConfig => ({
  name: 'vm',
  uuid: UUID,
  driver: 'qemu',
  vcpus: 1,
  memory: 64,
  os: {},
  disks: [{ source: { path }, format: 'qcow2' }],
  nics: [],
  console: { type: 'serial' },
  autostart: false,
});

describe('external snapshot files', () => {
  it('names overlays beside the image they sit on', () => {
    expect(overlayPath('/pool/base.qcow2', 'vm', 'vda', 's1')).toBe('/pool/vm-vda.s1.qcow2');
    expect(overlayPath('/pool/base.qcow2', 'vm', 'vda', 's1', true)).toMatch(/^\/pool\/vm-vda\.s1\.revert-[0-9a-z]+\.qcow2$/);
  });

  it('merges a chain link down: the child and the active disk move to the image it was merged into', () => {
    // base ← s1 overlay (= s2's frozen image) ← s2 overlay (active)
    const s1 = snap('s1', 'external', '/p/base.qcow2', '/p/o1.qcow2');
    const s2 = snap('s2', 'external', '/p/o1.qcow2', '/p/o2.qcow2', 's1');
    const plan = commitPlan(s1, [s1, s2], new Map([['vda', '/p/o2.qcow2']]));
    expect([...plan]).toEqual([['vda', { from: '/p/o1.qcow2', into: '/p/base.qcow2' }]]);
    const after = afterCommit(s1, [s1, s2], config('/p/o2.qcow2'), ['vda'], plan);
    expect(after.updated).toEqual({ s2: [{ target: 'vda', file: '/p/base.qcow2', overlay: '/p/o2.qcow2' }] });
    expect(after.config).toBeUndefined();

    const leaf = commitPlan(s2, [s2], new Map([['vda', '/p/o2.qcow2']]));
    expect(afterCommit(s2, [s2], config('/p/o2.qcow2'), ['vda'], leaf).config?.disks[0]?.source).toEqual({ path: '/p/o1.qcow2' });
  });

  it('refuses to commit across a branch or over an internal snapshot inside the overlay', () => {
    const s1 = snap('s1', 'external', '/p/base.qcow2', '/p/o1b.qcow2');
    const branch = snap('s2', 'external', '/p/o1a.qcow2', '/p/o2.qcow2', 's1');
    expect(() => commitPlan(s1, [s1, branch], new Map([['vda', '/p/o1b.qcow2']]))).toThrow(/branches/);
    const inside = snap('i1', 'internal', '/p/o1b.qcow2', undefined, 's1');
    expect(() => commitPlan(s1, [s1, inside], new Map([['vda', '/p/o1b.qcow2']]))).toThrow(/lives inside/);
  });

  it('has nothing to merge when the overlay was already discarded by a revert', () => {
    const s1 = snap('s1', 'external', '/p/base.qcow2', '/p/gone.qcow2');
    expect(commitPlan(s1, [s1], new Map([['vda', '/p/other.qcow2']])).size).toBe(0);
    expect(filesInUse([s1])).toEqual(new Set(['/p/base.qcow2']));
  });
});

import { describe, expect, it } from 'vitest';
import type { DomainSnapshot } from '@virtbus/api-contract';
import { snapshotTree } from './snapshots.js';

const snap = (name: string, parent: string | undefined, children: string[], current = false): DomainSnapshot => ({
  name,
  domain: '6f0f5c0e-8a0e-4a4e-9a59-2a5c6ad2f001',
  kind: 'internal',
  state: 'running',
  memory: true,
  ...(parent ? { parent } : {}),
  children,
  current,
  createdAt: '2026-01-01T00:00:00.000Z',
  disks: [],
});

describe('snapshotTree', () => {
  it('draws children under their parent and marks the current snapshot', () => {
    const text = snapshotTree({
      current: 'd',
      snapshots: [snap('a', undefined, ['b', 'd']), snap('b', 'a', ['c']), snap('c', 'b', []), snap('d', 'a', [], true)],
    });
    expect(text).toBe(['a', '├── b', '│   └── c', '└── d (current)'].join('\n'));
  });
});

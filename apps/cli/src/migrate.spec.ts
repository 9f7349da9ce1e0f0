import { describe, expect, it } from 'vitest';
import type { AsyncOperation } from '@virtbus/api-contract';
import { progressLine } from './migrate.js';

describe('migrate progress line', () => {
  it('shows a bar, percent, bytes and the migration figures', () => {
    const operation: AsyncOperation = {
      id: '6c1f2a5e-0000-4000-8000-000000000001',
      class: 'task',
      description: 'migrate web to b',
      status: 'running',
      progress: { percent: 50, bytesProcessed: 128 * 1024 * 1024, bytesTotal: 256 * 1024 * 1024 },
      resources: {},
      createdAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:00.000Z',
      migration: {
        phase: 'copying-ram',
        ramTransferredBytes: 128 * 1024 * 1024,
        ramRemainingBytes: 128 * 1024 * 1024,
        ramTotalBytes: 256 * 1024 * 1024,
        iteration: 2,
        dirtyPagesRate: 0,
        diskProcessedBytes: 0,
        diskTotalBytes: 0,
      },
    };
    expect(progressLine(operation)).toBe(`[${'#'.repeat(15)}${'-'.repeat(15)}]  50.0% 128.0 MiB/256.0 MiB copying-ram, pass 2, 128.0 MiB RAM left`);
  });
});

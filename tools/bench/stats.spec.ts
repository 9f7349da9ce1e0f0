import { describe, expect, it } from 'vitest';
import { load, percentile, summarize } from './stats.js';

describe('bench statistics', () => {
  it('takes nearest-rank percentiles', () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(sorted, 50)).toBe(50);
    expect(percentile(sorted, 99)).toBe(99);
    expect(percentile([7], 99)).toBe(7);
  });

  it('computes throughput from the wall time', () => {
    expect(summarize([1, 2, 3, 4], 2000).throughputPerSec).toBe(2);
  });

  it('never has more than the asked number of calls in flight', async () => {
    let current = 0;
    let peak = 0;
    const summary = await load(
      async () => {
        current++;
        peak = Math.max(peak, current);
        await new Promise((resolve) => setImmediate(resolve));
        current--;
      },
      4,
      40,
    );
    expect(summary.count).toBe(40);
    expect(peak).toBe(4);
  });
});

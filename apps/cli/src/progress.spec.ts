import { describe, expect, it } from 'vitest';
import { ProgressMeter, duration } from './progress.js';

const MiB = 1024 * 1024;

/** A meter on a clock the test moves, with every line it drew. */
function meter(): { meter: ProgressMeter; lines: [string, boolean][]; clock: { t: number } } {
  const clock = { t: 1_000_000 };
  const lines: [string, boolean][] = [];
  return { meter: new ProgressMeter((line, final) => lines.push([line, final]), () => clock.t), lines, clock };
}

describe('ProgressMeter', () => {
  it('redraws at most 10 times a second however often it is told', () => {
    const { meter: progress, lines, clock } = meter();
    // 5 s of updates every millisecond (64 KiB chunks at 64 MB/s)
    for (let step = 0; step < 5000; step++) {
      progress.update(step * 65_536, 5000 * 65_536);
      clock.t += 1;
    }
    expect(lines.length).toBeLessThanOrEqual(50);
    expect(lines.length).toBeGreaterThanOrEqual(45);
    expect(lines.every(([, final]) => !final)).toBe(true);
  });

  it('shows the rate and the time left', () => {
    const { meter: progress, lines, clock } = meter();
    progress.update(0, 100 * MiB);
    for (let second = 1; second <= 2; second++) {
      clock.t += 1000;
      progress.update(second * 10 * MiB, 100 * MiB);
    }
    expect(lines.at(-1)![0]).toMatch(/ 20\.0% 20\.0 MiB\/100\.0 MiB 10\.0 MiB\/s ETA 0:08$/);
  });

  it('draws the final line at once, with the average rate and the time it took', () => {
    const { meter: progress, lines, clock } = meter();
    progress.update(0, 30 * MiB);
    clock.t += 30;
    progress.update(MiB, 30 * MiB);
    clock.t += 2970;
    progress.finish(30 * MiB, 30 * MiB);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toEqual([`[${'#'.repeat(30)}] 100.0% 30.0 MiB/30.0 MiB 10.0 MiB/s in 0:03`, true]);
  });

  it('shows no percent of an unknown total and no time left, only the rate', () => {
    const { meter: progress, lines, clock } = meter();
    progress.update(0, undefined);
    clock.t += 500;
    progress.update(2 * MiB, undefined);
    expect(lines.map(([line]) => line)).toEqual(['0 B --/s', '2.0 MiB 4.0 MiB/s']);
  });

  it('writes durations like a clock', () => {
    expect([duration(0), duration(8.4), duration(65), duration(3725), duration(Number.POSITIVE_INFINITY)]).toEqual(['0:00', '0:08', '1:05', '1:02:05', '--:--']);
  });
});

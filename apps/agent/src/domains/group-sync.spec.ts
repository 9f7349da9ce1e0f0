import { describe, expect, it } from 'vitest';
import { GroupSync } from './group-sync.js';

describe('GroupSync', () => {
  it('runs once for a lone caller, and once more for every caller that came during a run', async () => {
    const started: number[] = [];
    const finish: (() => void)[] = [];
    const group = new GroupSync(
      () =>
        new Promise<void>((resolve) => {
          started.push(started.length);
          finish.push(resolve);
        }),
    );
    const first = group.run();
    expect(started).toHaveLength(1);
    let laterDone = 0;
    const later = [group.run(), group.run(), group.run()].map((promise) => promise.then(() => laterDone++));
    expect(started).toHaveLength(1);
    finish[0]!();
    await first;
    await new Promise((resolve) => setImmediate(resolve));
    // the callers that came during the first run wait for a second one, started after the first ended
    expect(started).toHaveLength(2);
    expect(laterDone).toBe(0);
    finish[1]!();
    await Promise.all(later);
    expect(laterDone).toBe(3);
    const alone = group.run();
    expect(started).toHaveLength(3);
    finish[2]!();
    await alone;
  });

  it('passes a failed run to its callers and still runs for the next ones', async () => {
    let calls = 0;
    const group = new GroupSync(async () => {
      calls++;
      if (calls === 1) throw new Error('EIO');
    });
    await expect(group.run()).rejects.toThrow('EIO');
    await expect(group.run()).resolves.toBeUndefined();
    expect(calls).toBe(2);
  });
});

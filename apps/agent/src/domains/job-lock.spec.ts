import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { JobLocks } from './job-lock.js';

describe('JobLocks', () => {
  it('serialises jobs on one key in arrival order, even when one fails', async () => {
    const locks = new JobLocks();
    const trace: string[] = [];
    const job = (name: string, ms: number, fail = false) => async () => {
      trace.push(`${name}:start`);
      await sleep(ms);
      trace.push(`${name}:end`);
      if (fail) throw new Error(name);
      return name;
    };
    const results = await Promise.allSettled([locks.run('a', job('one', 30, true)), locks.run('a', job('two', 5)), locks.run('a', job('three', 1))]);
    expect(trace).toEqual(['one:start', 'one:end', 'two:start', 'two:end', 'three:start', 'three:end']);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
    expect(locks.busyKeys).toBe(0);
  });

  it('runs different keys in parallel', async () => {
    const locks = new JobLocks();
    const trace: string[] = [];
    const job = (name: string, ms: number) => async () => {
      trace.push(`${name}:start`);
      await sleep(ms);
      trace.push(`${name}:end`);
    };
    await Promise.all([locks.run('a', job('a', 30)), locks.run('b', job('b', 1))]);
    expect(trace).toEqual(['a:start', 'b:start', 'b:end', 'a:end']);
  });
});

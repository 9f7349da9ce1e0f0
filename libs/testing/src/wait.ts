import { setTimeout as sleep } from 'node:timers/promises';

/** Polls `check` until it gives a truthy value, which it returns; fails naming `what` (and `explain()`) after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 60_000,
  explain?: () => Promise<string>,
): Promise<Exclude<T, false | undefined | null | 0 | ''>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as Exclude<T, false | undefined | null | 0 | ''>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${explain ? `; ${await explain()}` : ''}`);
    await sleep(50);
  }
}

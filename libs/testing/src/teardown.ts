import { rm } from 'node:fs/promises';
import { endDomainsUnder } from './leftover-domains.js';

/** What a test's afterAll ends: a process, a server, a connection, a tracer, a directory (a string) to remove, or a list of them ended together. */
export type TearDownPart = { stop(): unknown } | { close(): unknown } | { shutdown(): unknown } | string | null | undefined | readonly TearDownPart[];

/** Ends each part in the order given (one not yet made is passed over); every part is tried even when one before failed, and the failures are thrown together. */
export async function tearDown(...parts: TearDownPart[]): Promise<void> {
  const failures: unknown[] = [];
  for (const part of parts) {
    try {
      if (part === null || part === undefined || part === '') continue;
      if (typeof part === 'string') {
        await endDomainsUnder(part);
        await rm(part, { recursive: true, force: true });
      }
      else if (Array.isArray(part)) await tearDownTogether(part);
      else if ('stop' in part) await part.stop();
      else if ('close' in part) await part.close();
      else await (part as { shutdown(): unknown }).shutdown();
    } catch (error) {
      failures.push(error);
    }
  }
  throwTogether(failures);
}

/** Ends parts in parallel (the agents of one test), with the same failure rule. */
async function tearDownTogether(parts: readonly TearDownPart[]): Promise<void> {
  const outcomes = await Promise.allSettled(parts.map((part) => tearDown(part)));
  throwTogether(outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason as unknown] : [])));
}

function throwTogether(failures: unknown[]): void {
  if (failures.length === 1) throw failures[0];
  if (failures.length > 1) throw new AggregateError(failures, `${failures.length} parts failed to end`);
}

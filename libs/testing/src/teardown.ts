import { rm } from 'node:fs/promises';

/** What a test's afterAll ends: a process, a server, a connection, a tracer, or a directory (a string) to remove. */
export type TearDownPart = { stop(): unknown } | { close(): unknown } | { shutdown(): unknown } | string | null | undefined;

/** Ends each part in the order given (one not yet made is passed over); every part is tried even when one before failed, and the failures are thrown together. */
export async function tearDown(...parts: TearDownPart[]): Promise<void> {
  const failures: unknown[] = [];
  for (const part of parts) {
    try {
      if (part === null || part === undefined || part === '') continue;
      if (typeof part === 'string') await rm(part, { recursive: true, force: true });
      else if ('stop' in part) await part.stop();
      else if ('close' in part) await part.close();
      else await part.shutdown();
    } catch (error) {
      failures.push(error);
    }
  }
  if (failures.length === 1) throw failures[0];
  if (failures.length > 1) throw new AggregateError(failures, `${failures.length} parts failed to end`);
}

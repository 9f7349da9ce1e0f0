import fc from 'fast-check';

/** The seed of every fuzz run: fixed so a failure repeats; VIRTBUS_FUZZ_SEED picks another. */
export const FUZZ_SEED = Number(process.env['VIRTBUS_FUZZ_SEED'] ?? 20261122);

export interface FuzzBatches {
  /** Inputs sent at once in one run. */
  batch: number;
  runs: number;
  /** How much of fast-check's report goes into the thrown error. */
  reportChars: number;
}

/** Sends `runs` batches of arbitrary inputs, each batch in parallel; stops at the first run that adds to `failures` and throws them with fast-check's report. */
export async function fuzzInBatches<T>(arbitrary: fc.Arbitrary<T>, options: FuzzBatches, send: (input: T) => Promise<void>, failures: readonly string[]): Promise<void> {
  await fc
    .assert(
      fc.asyncProperty(fc.array(arbitrary, { minLength: options.batch, maxLength: options.batch }), async (inputs) => {
        await Promise.all(inputs.map((input) => send(input)));
        return failures.length === 0;
      }),
      { numRuns: options.runs, endOnFailure: true, seed: FUZZ_SEED },
    )
    .catch((error: unknown) => {
      throw new Error(`${failures.slice(0, 20).join('\n')}\n${String(error).slice(0, options.reportChars)}`);
    });
}

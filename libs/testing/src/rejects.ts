import { VirtError } from '@virtbus/api-contract';

/** Awaits a call that must fail with the contract error `code`; throws (failing the test) when it resolves or fails otherwise. */
export async function rejectsWith(promise: Promise<unknown>, code: string): Promise<VirtError> {
  const outcome = await promise.then(
    (value: unknown) => ({ resolved: value }),
    (failure: unknown) => ({ failure }),
  );
  if ('resolved' in outcome) throw new Error(`expected ${code}, the call resolved with ${JSON.stringify(outcome.resolved)?.slice(0, 500)}`);
  const { failure } = outcome;
  if (!VirtError.is(failure)) throw new Error(`expected ${code}, the call failed with something other than a VirtError`, { cause: failure });
  if (failure.code !== code) throw new Error(`expected ${code}, got ${failure.code}: ${failure.message}`, { cause: failure });
  return failure;
}

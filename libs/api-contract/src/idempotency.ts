/** HTTP and NATS header that makes a write safe to retry: the agent answers a repeat with the first answer. */
export const IDEMPOTENCY_HEADER = 'Idempotency-Key';

/** How long an agent remembers the answer to a key. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

const KEY = /^[\x21-\x7e]{1,255}$/;

/** 1 to 255 visible ASCII characters (a UUID is typical). */
export function isIdempotencyKey(value: unknown): value is string {
  return typeof value === 'string' && KEY.test(value);
}

import { setTimeout as sleep } from 'node:timers/promises';

/** What the retry loop logs through: pino's `Logger` fits. */
export interface RetryLogger {
  info(details: object, message: string): void;
}

export interface JetStreamRetryOptions {
  /** Give up after this long in all (default 60 s): a cluster that never forms is an error, not a hang. */
  deadlineMs?: number;
  /** First pause between attempts (default 100 ms), doubled each time up to `maxDelayMs` (default 2 s), with jitter. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  logger?: RetryLogger;
  /** Stops waiting (the caller is closing). */
  signal?: AbortSignal;
  /** Source of randomness for the jitter (tests). */
  random?: () => number;
}

export const DEFAULT_JETSTREAM_READY_DEADLINE_MS = 60_000;

/** Raised when JetStream stayed unavailable past the deadline; `cause` is the last transient error. */
export class JetStreamNotReadyError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'JetStreamNotReadyError';
  }
}

// nats-server err_codes of a cluster still forming or between leaders: no suitable peers, not available, not leader, insufficient resources
const TRANSIENT_API_CODES = new Set([10005, 10008, 10009, 10023]);

/**
 * What a JetStream call that failed this way is waiting for, or undefined when the error is permanent
 * (bad config, permissions, a stream that exists with other settings): those must not be retried.
 */
export function transientJetStreamWait(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const text = `${error.message} ${error.cause instanceof Error ? error.cause.message : ''}`;
  const apiCode = (error as { code?: unknown }).code;
  if (/permissions? violation|authorization/i.test(text)) return undefined;
  if (/no suitable peers|insufficient resources/i.test(text)) return 'waiting for enough JetStream servers to join the cluster to place the replicas';
  if (/temporarily unavailable|can ?not handle request|no (meta )?leader/i.test(text)) return 'waiting for the JetStream cluster to elect a meta leader';
  // a publish to a stream that was just created answers "no responders" until the stream's own group elects a leader
  if (/no responders: '\$KV\.|no responders: '(?!\$JS\.API)/i.test(text)) return 'waiting for the stream to elect a leader';
  if (/jetstream (is )?not enabled|no responders|\b503\b/i.test(text)) return 'waiting for the JetStream cluster to elect a meta leader (JetStream API not answering)';
  if (error.name === 'TimeoutError' || /\btimeout\b|timed out/i.test(text)) return 'waiting for the JetStream API to answer (timeout; a meta leader may still be elected)';
  if (/stream is offline|stream offline/i.test(text)) return 'waiting for the stream to come online';
  if (typeof apiCode === 'number' && TRANSIENT_API_CODES.has(apiCode)) return 'waiting for the JetStream cluster to become available';
  if ((error as { status?: unknown }).status === 503) return 'waiting for the JetStream cluster to become available';
  return undefined;
}

/** The pause before retry `attempt` (0-based): exponential, capped, with "equal jitter" so agents started together spread out. */
export function retryDelayMs(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * Runs `attempt` (create a stream, a KV bucket…) until it succeeds, retrying only transient JetStream errors
 * with jittered exponential backoff and logging what it waits for; a permanent error is thrown at once.
 */
export async function untilJetStreamReady<T>(what: string, attempt: () => Promise<T>, options: JetStreamRetryOptions = {}): Promise<T> {
  const deadlineMs = options.deadlineMs ?? DEFAULT_JETSTREAM_READY_DEADLINE_MS;
  const initialMs = options.initialDelayMs ?? 100;
  const maxMs = options.maxDelayMs ?? 2000;
  const started = Date.now();
  let lastWait: string | undefined;
  for (let tries = 0; ; tries++) {
    try {
      const result = await attempt();
      if (lastWait) options.logger?.info({ what, tries: tries + 1, waitedMs: Date.now() - started }, `JetStream ready: ${what}`);
      return result;
    } catch (error) {
      const wait = transientJetStreamWait(error);
      if (!wait) throw error;
      const elapsed = Date.now() - started;
      const delay = Math.min(retryDelayMs(tries, initialMs, maxMs, options.random), deadlineMs - elapsed);
      if (delay <= 0 || options.signal?.aborted) {
        throw new JetStreamNotReadyError(`${what}: JetStream not ready after ${Math.round(elapsed / 1000)} s (${wait}; last error: ${(error as Error).message})`, { cause: error });
      }
      if (wait !== lastWait) options.logger?.info({ what, err: (error as Error).message, elapsedMs: elapsed }, `${wait}…`);
      lastWait = wait;
      await sleep(delay, undefined, options.signal ? { signal: options.signal } : undefined).catch(() => undefined);
    }
  }
}

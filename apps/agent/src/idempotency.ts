import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { IDEMPOTENCY_TTL_MS, VirtError, type ErrorBody, type OperationName } from '@virtbus/api-contract';
import { writeJsonAtomic } from '@virtbus/drivers';

/** The first answer to a key: a result or a client error. */
export type Outcome = { result: unknown } | { error: ErrorBody };

interface StoredAnswer {
  key: string;
  operation: OperationName;
  fingerprint: string;
  storedAt: number;
  outcome: Outcome;
}

interface Entry {
  answer: StoredAnswer;
  file: string;
  bytes: number;
}

export interface IdempotencyStoreOptions {
  /** Directory of one file per key (`<state-dir>/idempotency`). */
  dir: string;
  logger: Logger;
  ttlMs?: number;
  maxEntries?: number;
  maxBytes?: number;
  now?: () => number;
}

export const DEFAULT_IDEMPOTENCY_MAX_ENTRIES = 10_000;
export const DEFAULT_IDEMPOTENCY_MAX_BYTES = 64 * 1024 * 1024;

/** Sessions (upload, console) cannot be answered twice: a replayed session id names a finished session. */
export const NOT_REPLAYABLE: ReadonlySet<OperationName> = new Set<OperationName>([
  'volume.upload',
  'domain.console.attach',
  'domain.console.write',
  'domain.console.detach',
]);

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((key) => [key, canonical((value as Record<string, unknown>)[key])]),
    );
  }
  return value;
}

/** The request's identity for a key: operation plus the payload with its keys sorted. */
export function fingerprintOf(operation: OperationName, payload: unknown): string {
  return createHash('sha256').update(operation).update('\n').update(JSON.stringify(canonical(payload))).digest('hex');
}

function fileOf(key: string): string {
  return `${createHash('sha256').update(key).digest('hex')}.json`;
}

function errorBodyOf(error: unknown): ErrorBody {
  return VirtError.is(error) ? error.toBody() : new VirtError('INTERNAL', 'internal error').toBody();
}

/**
 * First answer per Idempotency-Key for 24 h, in memory and as one durable file per key, bounded by count and bytes
 * (oldest first out). Server errors (5xx) are not kept: the retry runs again.
 */
export class IdempotencyStore {
  private readonly entries = new Map<string, Entry>();
  private readonly inFlight = new Map<string, { operation: OperationName; fingerprint: string; done: Promise<Outcome> }>();
  private bytes = 0;
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly now: () => number;

  constructor(private readonly options: IdempotencyStoreOptions) {
    this.ttlMs = options.ttlMs ?? IDEMPOTENCY_TTL_MS;
    this.maxEntries = options.maxEntries ?? DEFAULT_IDEMPOTENCY_MAX_ENTRIES;
    this.maxBytes = options.maxBytes ?? DEFAULT_IDEMPOTENCY_MAX_BYTES;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Loads the kept answers; expired, unreadable and leftover temp files are removed. */
  async init(): Promise<void> {
    await mkdir(this.options.dir, { recursive: true, mode: 0o700 });
    const loaded: Entry[] = [];
    for (const name of await readdir(this.options.dir)) {
      const file = join(this.options.dir, name);
      if (!name.endsWith('.json')) {
        await rm(file, { force: true });
        continue;
      }
      try {
        const text = await readFile(file, 'utf8');
        const answer = JSON.parse(text) as StoredAnswer;
        if (typeof answer.key !== 'string' || typeof answer.storedAt !== 'number' || this.expired(answer)) throw new Error('expired');
        loaded.push({ answer, file, bytes: Buffer.byteLength(text) });
      } catch {
        await rm(file, { force: true });
      }
    }
    loaded.sort((a, b) => a.answer.storedAt - b.answer.storedAt);
    for (const entry of loaded) this.remember(entry);
    await this.trim();
  }

  /** Runs `execute` for a new key; a repeat gets the first outcome, a different request IDEMPOTENCY_KEY_REUSED. */
  async run(key: string, operation: OperationName, fingerprint: string, execute: () => Promise<unknown>): Promise<{ outcome: Outcome; replayed: boolean }> {
    const running = this.inFlight.get(key);
    if (running) {
      this.check(key, running.operation, running.fingerprint, operation, fingerprint);
      return { outcome: await running.done, replayed: true };
    }
    const kept = this.entries.get(key);
    if (kept && !this.expired(kept.answer)) {
      this.check(key, kept.answer.operation, kept.answer.fingerprint, operation, fingerprint);
      return { outcome: kept.answer.outcome, replayed: true };
    }
    const done = (async (): Promise<Outcome> => {
      let outcome: Outcome;
      try {
        outcome = { result: await execute() };
      } catch (error) {
        outcome = { error: errorBodyOf(error) };
      }
      if (!('error' in outcome) || outcome.error.status < 500) await this.keep({ key, operation, fingerprint, storedAt: this.now(), outcome });
      return outcome;
    })();
    this.inFlight.set(key, { operation, fingerprint, done });
    try {
      return { outcome: await done, replayed: false };
    } finally {
      this.inFlight.delete(key);
    }
  }

  private check(key: string, keptOperation: OperationName, keptFingerprint: string, operation: OperationName, fingerprint: string): void {
    if (keptOperation === operation && keptFingerprint === fingerprint) return;
    throw new VirtError('IDEMPOTENCY_KEY_REUSED', `Idempotency-Key ${key.slice(0, 64)} was used for another ${keptOperation === operation ? 'request body' : `operation (${keptOperation})`}; use a new key`);
  }

  private expired(answer: StoredAnswer): boolean {
    return this.now() - answer.storedAt >= this.ttlMs;
  }

  private remember(entry: Entry): void {
    const old = this.entries.get(entry.answer.key);
    if (old) this.bytes -= old.bytes;
    this.entries.delete(entry.answer.key);
    this.entries.set(entry.answer.key, entry);
    this.bytes += entry.bytes;
  }

  /** Written before the answer goes out, so a crash right after the work still leaves the answer for the retry. */
  private async keep(answer: StoredAnswer): Promise<void> {
    const file = join(this.options.dir, fileOf(answer.key));
    const bytes = Buffer.byteLength(`${JSON.stringify(answer, null, 2)}\n`);
    try {
      await writeJsonAtomic(file, answer);
    } catch (error) {
      // the work is done and its answer goes out; only a retry would run it again
      this.options.logger.warn({ err: error, operation: answer.operation }, 'idempotency answer not kept');
      return;
    }
    this.remember({ answer, file, bytes });
    await this.trim();
  }

  /** Drops expired answers and then the oldest until both bounds hold. */
  private async trim(): Promise<void> {
    for (const [key, entry] of this.entries) {
      const over = this.entries.size > this.maxEntries || this.bytes > this.maxBytes;
      if (!over && !this.expired(entry.answer)) break;
      this.entries.delete(key);
      this.bytes -= entry.bytes;
      await rm(entry.file, { force: true }).catch((error: unknown) => this.options.logger.warn({ err: error }, 'expired idempotency answer not removed'));
    }
  }
}

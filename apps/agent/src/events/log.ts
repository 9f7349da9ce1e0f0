import { constants } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { DomainState, StateReason } from '@virtbus/api-contract';
import { writeFileAtomic } from '@virtbus/drivers';
import type { Logger } from 'pino';

/** Segments are opened O_DSYNC: each group write is on disk when it returns, one thread-pool hop instead of write + fdatasync. */
const SEGMENT_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC;

/** A domain as its last recorded event left it (reason and stateChangedAt: absent in records of older agents). */
export interface RecordedDomain {
  name: string;
  state: DomainState;
  reason?: StateReason;
  stateChangedAt?: string;
  /** virsh's domain id while it runs: kept in the log record so a start or stop needs no domain file write. */
  id?: number;
  /** The change stopped the domain and dropped its driver runtime facts: the domain file, not rewritten for it, may still hold them. */
  runtimeCleared?: true;
}

/** The domain fact written in the same log record as an event: its state as of the event, or that it is gone. */
export type DomainChange = ({ uuid: string } & RecordedDomain) | { uuid: string; removed: true };

/** One line of a segment file. */
interface LogLine<E> {
  event: E;
  domain?: DomainChange;
  /** A new domain's whole record (its file is written without waiting for the disk): the durable copy until a snapshot. */
  definition?: unknown;
}

/** The outbox file of agents before the log (`events-outbox.json`). */
interface LegacyOutbox<E> {
  lastSeq: number;
  pending: E[];
  domains?: Record<string, RecordedDomain>;
}

interface Segment {
  path: string;
  firstSeq: number;
  /** Last seq written to it; firstSeq - 1 while empty. */
  lastSeq: number;
}

interface Queued {
  seq: number;
  line: string;
  domain?: DomainChange;
  done: { resolve: () => void; reject: (error: unknown) => void };
}

export interface EventLogOptions {
  /** Directory of the log (segments, acked marker, domain snapshot). */
  dir: string;
  /** An outbox file of the old format, upgraded into the log once. */
  legacyOutboxPath?: string;
  logger: Logger;
  /** A segment is sealed once it holds this many bytes (default 4 MiB). */
  segmentBytes?: number;
  /** Longest wait before the acked marker is written and acknowledged segments are dropped (default 200 ms). */
  checkpointMs?: number;
}

/** Makes durable elsewhere what definitions recorded so far hold (run before a snapshot lets their segments go). */
export type BeforeSnapshot = () => Promise<void>;

const SEGMENT_SUFFIX = '.jsonl';
const ACKED_FILE = 'acked.json';
const DOMAINS_FILE = 'domains.json';
const DEFAULT_SEGMENT_BYTES = 4 * 1024 * 1024;

const segmentName = (firstSeq: number) => `${String(firstSeq).padStart(16, '0')}${SEGMENT_SUFFIX}`;

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * The node's event outbox as an append-only log: segment files of JSON lines (one event per line, with the domain
 * state it leaves), an "acked up to" marker, and a snapshot of the recorded domain states. Appends that arrive while a
 * write is in progress share the next O_DSYNC write (group commit). Fully acknowledged segments are dropped in the
 * background once the domain snapshot covers them.
 */
export class EventLog<E extends { seq: number }> {
  private readonly segmentBytes: number;
  private readonly checkpointMs: number;
  private sealed: Segment[] = [];
  private active!: Segment;
  private activeSize = 0;
  private handle: FileHandle | undefined;
  private queue: Queued[] = [];
  private writing: Promise<void> | undefined;
  private writes = 0;
  private nextSeq = 1;
  private durable = 0;
  private acked = 0;
  private markedAcked = 0;
  private snapshotSeq = 0;
  /** Unacknowledged events in seq order, from `head` on. */
  private pending: E[] = [];
  private head = 0;
  private domains: Map<string, RecordedDomain> | undefined;
  private checkpointTimer: NodeJS.Timeout | undefined;
  private checkpointing: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly durableListeners = new Set<() => void>();
  /** Definitions in records after the snapshot, as found at load (uuid → record), until taken. */
  private definitions = new Map<string, unknown>();
  private beforeSnapshot: BeforeSnapshot | undefined;

  private constructor(private readonly options: EventLogOptions) {
    this.segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.checkpointMs = options.checkpointMs ?? 200;
  }

  static async open<E extends { seq: number }>(options: EventLogOptions): Promise<EventLog<E>> {
    const log = new EventLog<E>(options);
    await log.load();
    return log;
  }

  /** Reads a log without changing it (tests, tools): the highest seq on disk and the events after the acked marker. */
  static async inspect<E extends { seq: number }>(dir: string): Promise<{ lastSeq: number; ackedSeq: number; pending: E[] }> {
    const ackedSeq = (await readJson<{ seq: number }>(join(dir, ACKED_FILE)))?.seq ?? 0;
    const names = (await readdir(dir)).filter((name) => /^\d{16}\.jsonl$/.test(name)).sort();
    let lastSeq = Math.max(ackedSeq, names.length > 0 ? Number(names[names.length - 1]!.slice(0, 16)) - 1 : 0);
    const pending: E[] = [];
    for (const name of names) {
      const lines = (await readFile(join(dir, name), 'utf8')).split('\n').slice(0, -1);
      for (const line of lines) {
        const { event } = JSON.parse(line) as LogLine<E>;
        lastSeq = Math.max(lastSeq, event.seq);
        if (event.seq > ackedSeq) pending.push(event);
      }
    }
    return { lastSeq, ackedSeq, pending };
  }

  /** Highest seq handed out. */
  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  /** Highest seq on disk (events up to it may be published). */
  get durableSeq(): number {
    return this.durable;
  }

  /** Highest seq acknowledged by JetStream. */
  get ackedSeq(): number {
    return this.acked;
  }

  get pendingCount(): number {
    return this.pending.length - this.head;
  }

  /** Group writes (one O_DSYNC write each) since the log was opened. */
  get commitCount(): number {
    return this.writes;
  }

  /** Sealed and active segment files (compaction drops sealed ones). */
  get segmentCount(): number {
    return this.sealed.length + 1;
  }

  /** The unacknowledged event with this seq. */
  eventAt(seq: number): E | undefined {
    const first = this.pending[this.head];
    return first ? this.pending[this.head + seq - first.seq] : undefined;
  }

  /** Told each time more events became durable. */
  onDurable(listener: () => void): () => void {
    this.durableListeners.add(listener);
    return () => this.durableListeners.delete(listener);
  }

  /** Domains as their last durable events left them; undefined when nothing was ever recorded (a log that predates it). */
  recordedDomains(): ReadonlyMap<string, RecordedDomain> | undefined {
    return this.domains;
  }

  /** Definitions recorded after the last snapshot, as found at load: what a domain file lost in a crash is rebuilt from. Once. */
  takeDefinitions(): Map<string, unknown> {
    const definitions = this.definitions;
    this.definitions = new Map();
    return definitions;
  }

  /** Runs `hook` before each snapshot: the records it covers (and their definitions) may be dropped after it. */
  setBeforeSnapshot(hook: BeforeSnapshot): void {
    this.beforeSnapshot = hook;
  }

  /** Starts the domain record from the given domains (written as the snapshot). */
  async seedDomains(domains: ReadonlyMap<string, RecordedDomain>): Promise<void> {
    this.domains = new Map(domains);
    await this.enqueueCheckpoint(true);
  }

  /**
   * Numbers the next event and queues it for the next group write; the event is returned at once (seq assigned, no gap
   * possible) and `durable` resolves once its line is on disk.
   */
  append(build: (seq: number) => E, domain?: DomainChange, definition?: unknown): { event: E; durable: Promise<void> } {
    if (this.closed) throw new Error('event log is closed');
    const seq = this.nextSeq++;
    const event = build(seq);
    const line: LogLine<E> = domain ? { event, domain, ...(definition === undefined ? {} : { definition }) } : { event };
    let done!: Queued['done'];
    const durable = new Promise<void>((resolve, reject) => (done = { resolve, reject }));
    this.queue.push({ seq, line: `${JSON.stringify(line)}\n`, ...(domain ? { domain } : {}), done });
    this.pending.push(event);
    this.startWriting();
    return { event, durable };
  }

  /** JetStream acknowledged every event up to `seq`: they leave memory, and their segments go in the background. */
  ack(seq: number): void {
    if (seq <= this.acked) return;
    this.acked = Math.min(seq, this.durable);
    while (this.head < this.pending.length && this.pending[this.head]!.seq <= this.acked) this.head++;
    if (this.head > 1024 && this.head * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.head);
      this.head = 0;
    }
    this.checkpointTimer ??= setTimeout(() => {
      this.checkpointTimer = undefined;
      void this.enqueueCheckpoint(false).catch((error: unknown) => this.options.logger.warn({ err: error }, 'event log checkpoint failed; retried with the next ack'));
    }, this.checkpointMs);
    this.checkpointTimer.unref();
  }

  /** Waits for queued writes, writes the acked marker and closes the segment. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.checkpointTimer);
    this.checkpointTimer = undefined;
    await this.writing;
    await this.enqueueCheckpoint(false).catch((error: unknown) => this.options.logger.warn({ err: error }, 'event log checkpoint at close failed'));
    await this.handle?.close();
    this.handle = undefined;
    // Everything acknowledged: a snapshot covers every record and all segments go, so the next start replays none.
    if (this.acked === this.durable && this.domains) await this.compactAll().catch((error: unknown) => this.options.logger.warn({ err: error }, 'event log compaction at close failed'));
  }

  /** Writes the domain snapshot at the last seq and removes every segment (all acknowledged, the log closed). */
  private async compactAll(): Promise<void> {
    await this.enqueueCheckpoint(true);
    if (this.snapshotSeq !== this.durable || this.markedAcked !== this.durable) return;
    for (const segment of [...this.sealed, this.active]) await rm(segment.path, { force: true });
    this.sealed = [];
    await syncDir(this.options.dir);
  }

  private startWriting(): void {
    if (this.writing) return;
    this.writing = this.writeLoop().finally(() => {
      this.writing = undefined;
      // Appends made between the loop's last check and here would otherwise wait for the next append.
      if (this.queue.length > 0) this.startWriting();
    });
  }

  private async writeLoop(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      const data = Buffer.from(batch.map((item) => item.line).join(''), 'utf8');
      try {
        if (this.activeSize >= this.segmentBytes) await this.roll(batch[0]!.seq);
        await writeAll(this.handle!, data);
      } catch (error) {
        // Back to the last whole line. The failed batch and everything queued behind it never happened: their emits
        // reject (the caller treats the change as failed), their seqs are handed out again, nothing of them is published.
        await this.handle?.truncate(this.activeSize).catch(() => undefined);
        const dropped = [...batch, ...this.queue];
        this.queue = [];
        this.nextSeq = this.durable + 1;
        while (this.pending.length > this.head && this.pending[this.pending.length - 1]!.seq > this.durable) this.pending.pop();
        const failure = Object.assign(new Error(`event log write failed: ${(error as Error).message}`, { cause: error }), { code: (error as NodeJS.ErrnoException).code });
        for (const item of dropped) item.done.reject(failure);
        this.options.logger.error({ err: error, dropped: dropped.length }, 'event log write failed; the changes it carried are refused');
        return;
      }
      this.writes++;
      this.activeSize += data.length;
      this.active.lastSeq = batch[batch.length - 1]!.seq;
      for (const item of batch) if (item.domain) this.applyDomain(item.domain);
      this.durable = this.active.lastSeq;
      for (const item of batch) item.done.resolve();
      for (const listener of this.durableListeners) listener();
    }
  }

  private applyDomain(change: DomainChange): void {
    this.domains ??= new Map();
    if ('removed' in change) this.domains.delete(change.uuid);
    else {
      const { uuid, ...recorded } = change;
      this.domains.set(uuid, recorded);
    }
  }

  private async roll(firstSeq: number): Promise<void> {
    const path = join(this.options.dir, segmentName(firstSeq));
    const next = await open(path, SEGMENT_FLAGS, 0o600);
    await syncDir(this.options.dir);
    await this.handle?.close();
    this.sealed.push(this.active);
    this.active = { path, firstSeq, lastSeq: firstSeq - 1 };
    this.handle = next;
    this.activeSize = 0;
  }

  private enqueueCheckpoint(forceSnapshot: boolean): Promise<void> {
    const run = this.checkpointing.then(() => this.checkpoint(forceSnapshot));
    this.checkpointing = run.catch(() => undefined);
    return run;
  }

  /** Writes the acked marker, the domain snapshot when dropping segments needs it, then drops acknowledged segments. */
  private async checkpoint(forceSnapshot: boolean): Promise<void> {
    const acked = this.acked;
    if (acked > this.markedAcked) {
      await writeFileAtomic(join(this.options.dir, ACKED_FILE), `${JSON.stringify({ seq: acked })}\n`);
      this.markedAcked = acked;
    }
    const droppable = this.sealed.filter((segment) => segment.lastSeq <= acked);
    const needed = droppable.length > 0 ? droppable[droppable.length - 1]!.lastSeq : 0;
    if (forceSnapshot || (this.domains && needed > this.snapshotSeq)) await this.writeSnapshot();
    const drop = droppable.filter((segment) => segment.lastSeq <= this.snapshotSeq || !this.domains);
    if (drop.length === 0) return;
    for (const segment of drop) await rm(segment.path, { force: true });
    this.sealed = this.sealed.filter((segment) => !drop.includes(segment));
    await syncDir(this.options.dir);
  }

  private async writeSnapshot(): Promise<void> {
    // The map only holds durable changes, so it is exactly the state as of durableSeq.
    const seq = this.durable;
    const text = JSON.stringify({ seq, domains: Object.fromEntries(this.domains ?? []) });
    // Definitions up to seq stop being needed once the snapshot is written: their files become durable first.
    await this.beforeSnapshot?.();
    await writeFileAtomic(join(this.options.dir, DOMAINS_FILE), `${text}\n`);
    this.snapshotSeq = seq;
  }

  private async load(): Promise<void> {
    const { dir, legacyOutboxPath } = this.options;
    const staging = `${dir}.upgrade`;
    await rm(staging, { recursive: true, force: true });
    const exists = await stat(dir).then(
      () => true,
      (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return false;
        throw error;
      },
    );
    if (!exists) {
      const legacy = legacyOutboxPath ? await readJson<LegacyOutbox<E>>(legacyOutboxPath) : undefined;
      await mkdir(staging, { recursive: true, mode: 0o700 });
      if (legacy) await this.writeUpgrade(staging, legacy);
      await rename(staging, dir);
      await syncDir(dirname(dir));
      if (legacy) this.options.logger.info({ lastSeq: legacy.lastSeq, pending: legacy.pending.length }, 'event outbox upgraded to the event log');
    }
    // An upgrade that finished its rename but not the removal of the old file.
    if (legacyOutboxPath) await rm(legacyOutboxPath, { force: true });
    await this.replay();
  }

  /** Lays out an old outbox as a log: its pending events in one segment, its domains as the snapshot. */
  private async writeUpgrade(staging: string, legacy: LegacyOutbox<E>): Promise<void> {
    const acked = legacy.pending.length > 0 ? legacy.pending[0]!.seq - 1 : legacy.lastSeq;
    const lines = legacy.pending.map((event) => `${JSON.stringify({ event })}\n`).join('');
    await writeFileAtomic(join(staging, segmentName(acked + 1)), lines);
    await writeFileAtomic(join(staging, ACKED_FILE), `${JSON.stringify({ seq: acked })}\n`);
    if (legacy.domains) await writeFileAtomic(join(staging, DOMAINS_FILE), `${JSON.stringify({ seq: legacy.lastSeq, domains: legacy.domains })}\n`);
  }

  private async replay(): Promise<void> {
    const { dir } = this.options;
    this.acked = (await readJson<{ seq: number }>(join(dir, ACKED_FILE)))?.seq ?? 0;
    this.markedAcked = this.acked;
    const snapshot = await readJson<{ seq: number; domains: Record<string, RecordedDomain> }>(join(dir, DOMAINS_FILE));
    if (snapshot) {
      this.snapshotSeq = snapshot.seq;
      this.domains = new Map(Object.entries(snapshot.domains));
    }
    const names = (await readdir(dir)).filter((name) => /^\d{16}\.jsonl$/.test(name)).sort();
    const segments: Segment[] = names.map((name) => ({ path: join(dir, name), firstSeq: Number(name.slice(0, 16)), lastSeq: 0 }));
    if (segments.length === 0) segments.push({ path: join(dir, segmentName(Math.max(this.acked, this.snapshotSeq) + 1)), firstSeq: Math.max(this.acked, this.snapshotSeq) + 1, lastSeq: 0 });
    let expected: number | undefined;
    for (const [index, segment] of segments.entries()) {
      const last = index === segments.length - 1;
      const next = segments[index + 1];
      // Acknowledged and covered by the snapshot: nothing in it is needed any more.
      if (next && next.firstSeq - 1 <= Math.min(this.acked, this.snapshot(snapshot))) {
        await rm(segment.path, { force: true });
        continue;
      }
      segment.lastSeq = segment.firstSeq - 1;
      const text = await readFile(segment.path, 'utf8').catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return '';
        throw error;
      });
      let offset = 0;
      while (offset < text.length) {
        const end = text.indexOf('\n', offset);
        let record: LogLine<E> | undefined;
        if (end >= 0) {
          try {
            record = JSON.parse(text.slice(offset, end)) as LogLine<E>;
          } catch {
            record = undefined;
          }
        }
        if (!record) {
          // A torn last line: its write never finished, so its append never returned. Anything else is damage.
          if (!last || (end >= 0 && end + 1 < text.length)) throw new Error(`event log segment ${segment.path} is damaged at byte ${offset}`);
          this.options.logger.warn({ path: segment.path, bytes: Buffer.byteLength(text.slice(offset)) }, 'dropping the torn last line of the event log');
          const truncate = await open(segment.path, 'r+');
          try {
            await truncate.truncate(Buffer.byteLength(text.slice(0, offset)));
            await truncate.sync();
          } finally {
            await truncate.close();
          }
          break;
        }
        const seq = record.event.seq;
        if ((expected !== undefined && seq !== expected) || (expected === undefined && seq !== segment.firstSeq)) {
          throw new Error(`event log segment ${segment.path} breaks the sequence at seq ${seq}`);
        }
        expected = seq + 1;
        segment.lastSeq = seq;
        if (record.domain && seq > this.snapshotSeq) {
          this.applyDomain(record.domain);
          if ('removed' in record.domain) this.definitions.delete(record.domain.uuid);
          else if (record.definition !== undefined) this.definitions.set(record.domain.uuid, record.definition);
        }
        if (seq > this.acked) this.pending.push(record.event);
        offset = end + 1;
      }
      expected = segment.lastSeq + 1;
      if (last) {
        this.active = segment;
        this.activeSize = Buffer.byteLength(text.slice(0, offset));
      } else this.sealed.push(segment);
    }
    // The publisher starts after the acked marker: it must name the event before the first one still on disk.
    if (this.pending.length > 0) this.acked = Math.max(this.acked, this.pending[0]!.seq - 1);
    this.nextSeq = Math.max(this.active.lastSeq, this.acked, this.snapshotSeq) + 1;
    if (this.active.lastSeq < this.nextSeq - 1) {
      // Everything acknowledged and the active segment empty: it takes the next seq as its name.
      if (this.activeSize > 0) throw new Error(`event log ${dir} ends before its acked marker`);
      await rm(this.active.path, { force: true });
      this.active = { path: join(dir, segmentName(this.nextSeq)), firstSeq: this.nextSeq, lastSeq: this.nextSeq - 1 };
    }
    this.durable = this.nextSeq - 1;
    this.handle = await open(this.active.path, SEGMENT_FLAGS, 0o600);
    await syncDir(dir);
  }

  private snapshot(snapshot: { seq: number } | undefined): number {
    // Without a snapshot a segment may hold the only record of a domain: it stays until a checkpoint writes one.
    return snapshot ? snapshot.seq : 0;
  }
}

/** One write call in the common case; a short write (a full disk frees up, a signal) continues where it stopped. */
async function writeAll(handle: FileHandle, bytes: Buffer): Promise<void> {
  for (let offset = 0; offset < bytes.length; ) offset += (await handle.write(bytes, offset, bytes.length - offset)).bytesWritten;
}

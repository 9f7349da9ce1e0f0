import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { Subjects, VirtError, type AsyncOperation, type MigrationProgress, type OperationEvent } from '@virtbus/api-contract';
import type { Logger } from 'pino';

const PROGRESS_EVENT_INTERVAL_MS = 500;
const KEEP_FINISHED = 100;

type OperationResult = NonNullable<AsyncOperation['result']>;

/** The running side of one operation: report progress, then succeed or fail exactly once. */
export interface OperationHandle {
  readonly id: string;
  readonly signal: AbortSignal;
  /** `migration` carries a migration's own figures (RAM, iteration, dirty rate, disk). */
  progress(bytesProcessed: number, bytesTotal?: number, migration?: MigrationProgress): void;
  succeed(result?: OperationResult): AsyncOperation;
  fail(error: unknown): AsyncOperation;
  snapshot(): AsyncOperation;
}

interface Entry {
  operation: AsyncOperation;
  controller: AbortController;
  lastEventAt: number;
}

/** Incus-style async operations kept in memory (running ones plus the last finished), announced on the bus. */
export class OperationManager {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly node: string,
    private readonly logger: Logger,
  ) {}

  list(): AsyncOperation[] {
    return [...this.entries.values()].map((entry) => structuredClone(entry.operation));
  }

  get(id: string): AsyncOperation {
    const entry = this.entries.get(id);
    if (!entry) throw new VirtError('NOT_FOUND', `no operation ${id}`);
    return structuredClone(entry.operation);
  }

  cancel(id: string): AsyncOperation {
    const entry = this.entries.get(id);
    if (!entry) throw new VirtError('NOT_FOUND', `no operation ${id}`);
    if (entry.operation.status !== 'running') throw new VirtError('OPERATION_INVALID', `operation ${id} is already ${entry.operation.status}`);
    entry.controller.abort();
    return structuredClone(entry.operation);
  }

  /** Registers a running operation; the caller drives it through the handle. */
  begin(description: string, resources: AsyncOperation['resources'], bytesTotal = 0): OperationHandle {
    const now = new Date().toISOString();
    const entry: Entry = {
      operation: {
        id: randomUUID(),
        class: 'task',
        description,
        status: 'running',
        progress: { percent: 0, bytesProcessed: 0, bytesTotal },
        resources,
        createdAt: now,
        updatedAt: now,
      },
      controller: new AbortController(),
      lastEventAt: 0,
    };
    this.entries.set(entry.operation.id, entry);
    this.prune();
    this.announce(entry, true);
    const op = entry.operation;
    const finish = (status: AsyncOperation['status'], extra: Partial<AsyncOperation>): AsyncOperation => {
      if (op.status === 'running') {
        Object.assign(op, extra, { status, updatedAt: new Date().toISOString() });
        this.announce(entry, true);
      }
      return structuredClone(op);
    };
    return {
      id: op.id,
      signal: entry.controller.signal,
      progress: (bytesProcessed, bytesTotal, migration) => {
        if (op.status !== 'running') return;
        if (migration) op.migration = migration;
        const total = bytesTotal ?? op.progress.bytesTotal;
        op.progress = { bytesProcessed, bytesTotal: total, percent: total > 0 ? Math.min(100, Math.round((bytesProcessed / total) * 10_000) / 100) : 0 };
        op.updatedAt = new Date().toISOString();
        this.announce(entry, false);
      },
      succeed: (result) => {
        const total = Math.max(op.progress.bytesTotal, op.progress.bytesProcessed);
        return finish('success', { progress: { percent: 100, bytesProcessed: total, bytesTotal: total }, ...(result ? { result } : {}) });
      },
      fail: (error) => {
        const body = (error instanceof VirtError ? error : new VirtError('OPERATION_FAILED', (error as Error)?.message ?? String(error))).toBody();
        return entry.controller.signal.aborted ? finish('cancelled', { error: body }) : finish('failure', { error: body });
      },
      snapshot: () => structuredClone(op),
    };
  }

  /** Starts `work` in the background and returns the operation as it is at once (for a 202 reply). */
  run(description: string, resources: AsyncOperation['resources'], bytesTotal: number, work: (handle: OperationHandle) => Promise<OperationResult | void>): AsyncOperation {
    const handle = this.begin(description, resources, bytesTotal);
    void work(handle).then(
      (result) => handle.succeed(result ?? undefined),
      (error: unknown) => {
        this.logger.warn({ err: error, operation: handle.id, description }, 'operation failed');
        handle.fail(error);
      },
    );
    return handle.snapshot();
  }

  /** Aborts every running operation (agent shutdown). */
  close(): void {
    for (const entry of this.entries.values()) if (entry.operation.status === 'running') entry.controller.abort();
  }

  private prune(): void {
    const finished = [...this.entries.values()].filter((entry) => entry.operation.status !== 'running');
    for (const entry of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) this.entries.delete(entry.operation.id);
  }

  private announce(entry: Entry, force: boolean): void {
    const now = Date.now();
    if (!force && now - entry.lastEventAt < PROGRESS_EVENT_INTERVAL_MS) return;
    entry.lastEventAt = now;
    const event: OperationEvent = { kind: 'operation', node: this.node, timestamp: new Date().toISOString(), operation: structuredClone(entry.operation) };
    try {
      this.nc.publish(Subjects.operationEvent(this.node, entry.operation.id), JSON.stringify(event));
    } catch (error) {
      this.logger.debug({ err: error }, 'operation event not published');
    }
  }
}

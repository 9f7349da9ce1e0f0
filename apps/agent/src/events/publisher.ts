import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstream, jetstreamManager, StorageType, type JetStreamClient } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import {
  EVENTS_STREAM,
  Subjects,
  type DomainSnapshotEvent,
  type DomainState,
  type LifecycleChange,
  type LifecycleEvent,
  type PoolEventType,
  type PoolState,
  type SnapshotEventType,
  type StateReason,
  type StoragePoolEvent,
  type NetworkEvent,
  type NetworkEventType,
  type NetworkState,
} from '@virtbus/api-contract';
import { untilJetStreamReady } from '@virtbus/client';
import { writeJsonAtomic } from '@virtbus/drivers';
import type { Logger } from 'pino';

export interface EventStreamLimits {
  /** How long the stream keeps events. */
  maxAgeMs: number;
  /** How many events the stream keeps in all. */
  maxMessages: number;
  /** Servers that keep a copy when the stream is created (1 by default); an existing stream keeps its own. */
  replicas?: number;
}

export const DEFAULT_STREAM_LIMITS: EventStreamLimits = { maxAgeMs: 7 * 24 * 3600 * 1000, maxMessages: 1_000_000 };

/** Domain and storage pool lifecycle events share the node's sequence and the outbox. */
type NodeEvent = LifecycleEvent | StoragePoolEvent | NetworkEvent | DomainSnapshotEvent;

/** What publish hooks see of any event. */
export interface PublishedEvent {
  readonly type: string;
  readonly seq: number;
  readonly timestamp: string;
}

/** A domain as its last recorded event left it. */
export interface RecordedDomain {
  name: string;
  state: DomainState;
}

interface Outbox {
  lastSeq: number;
  pending: NodeEvent[];
  /** Each defined domain as of its last recorded event; absent in outboxes written before it existed. */
  domains?: Record<string, RecordedDomain>;
}

/**
 * Numbers events per node and hands them to JetStream in order. The outbox on disk holds every event
 * not yet acknowledged, so neither a NATS outage nor an agent restart loses one or leaves a gap.
 */
export class EventPublisher {
  private outbox: Outbox = { lastSeq: 0, pending: [] };
  private readonly path: string;
  private readonly js: JetStreamClient;
  private flushing: Promise<void> | undefined;
  private persisting: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly listeners = new Set<(event: LifecycleEvent) => void>();
  private readonly publishedListeners = new Set<(event: PublishedEvent, lagSeconds: number) => void>();
  private readonly failureListeners = new Set<(event: PublishedEvent) => void>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly node: string,
    stateDir: string,
    private readonly logger: Logger,
    private readonly limits: EventStreamLimits = DEFAULT_STREAM_LIMITS,
  ) {
    this.path = join(stateDir, 'events-outbox.json');
    this.js = jetstream(nc);
  }

  async init(): Promise<void> {
    try {
      this.outbox = JSON.parse(await readFile(this.path, 'utf8')) as Outbox;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    await this.ensureStream();
    this.kick();
  }

  get lastSeq(): number {
    return this.outbox.lastSeq;
  }

  get pendingCount(): number {
    return this.outbox.pending.length;
  }

  onEvent(listener: (event: LifecycleEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Told once JetStream acknowledges an event, with the time since it was emitted (publish lag metrics). */
  onPublished(listener: (event: PublishedEvent, lagSeconds: number) => void): () => void {
    this.publishedListeners.add(listener);
    return () => this.publishedListeners.delete(listener);
  }

  /** Told when publishing an event failed (it is retried). */
  onPublishFailure(listener: (event: PublishedEvent) => void): () => void {
    this.failureListeners.add(listener);
    return () => this.failureListeners.delete(listener);
  }

  /** Domains as their last recorded events left them; undefined for an outbox from before this was recorded. */
  recordedDomains(): Readonly<Record<string, RecordedDomain>> | undefined {
    return this.outbox.domains;
  }

  /** Starts recording from the given domains (an outbox that predates the record). */
  async seedRecordedDomains(domains: Record<string, RecordedDomain>): Promise<void> {
    this.outbox.domains = { ...domains };
    await this.persist();
  }

  /** Records the event durably (outbox) and returns once it is on disk; publishing follows in order. */
  async emit(domain: { uuid: string; name: string }, change: LifecycleChange, state: DomainState, reason: StateReason): Promise<LifecycleEvent> {
    const event: LifecycleEvent = {
      kind: 'domain.lifecycle',
      node: this.node,
      seq: ++this.outbox.lastSeq,
      timestamp: new Date().toISOString(),
      uuid: domain.uuid,
      name: domain.name,
      type: change.type,
      detail: change.detail,
      state,
      reason,
    };
    this.outbox.pending.push(event);
    // Recorded in the same write as the event, so a restart can tell which domain changes never became events.
    this.outbox.domains ??= {};
    if (change.type === 'UNDEFINED') delete this.outbox.domains[domain.uuid];
    else this.outbox.domains[domain.uuid] = { name: domain.name, state };
    await this.persist();
    for (const listener of this.listeners) listener(event);
    this.kick();
    return event;
  }

  /** A storage pool lifecycle event, recorded and published like a domain event. */
  emitPool(pool: { uuid: string; name: string }, type: PoolEventType, state: PoolState): Promise<StoragePoolEvent> {
    return this.record((stamp) => ({ kind: 'pool.lifecycle', ...stamp, uuid: pool.uuid, name: pool.name, type, state }));
  }

  /** A virtual network lifecycle event, recorded and published like a domain event. */
  emitNetwork(network: { uuid: string; name: string }, type: NetworkEventType, state: NetworkState): Promise<NetworkEvent> {
    return this.record((stamp) => ({ kind: 'network.lifecycle', ...stamp, uuid: network.uuid, name: network.name, type, state }));
  }

  /** A snapshot event (created, reverted, deleted), recorded and published like a domain event. */
  emitSnapshot(domain: { uuid: string; name: string }, snapshot: string, type: SnapshotEventType): Promise<DomainSnapshotEvent> {
    return this.record((stamp) => ({ kind: 'snapshot.lifecycle', ...stamp, uuid: domain.uuid, domain: domain.name, snapshot, type }));
  }

  /** Numbers a resource event in the node's sequence, writes it to the outbox, then lets the publisher send it. */
  private async record<E extends StoragePoolEvent | NetworkEvent | DomainSnapshotEvent>(build: (stamp: { node: string; seq: number; timestamp: string }) => E): Promise<E> {
    const event = build({ node: this.node, seq: ++this.outbox.lastSeq, timestamp: new Date().toISOString() });
    this.outbox.pending.push(event);
    await this.persist();
    this.kick();
    return event;
  }

  /** Waits until every recorded event is acknowledged by JetStream (or the timeout passes). */
  async drain(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.outbox.pending.length > 0 && Date.now() < deadline) {
      this.kick();
      await sleep(20);
    }
    return this.outbox.pending.length === 0;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.flushing;
    await this.persisting;
  }

  /** A JetStream cluster that is still forming (no meta leader, peers not yet known) is waited for, not fatal. */
  private ensureStream(): Promise<void> {
    return untilJetStreamReady(`stream ${EVENTS_STREAM}`, () => this.ensureStreamOnce(), { logger: this.logger });
  }

  private async ensureStreamOnce(): Promise<void> {
    const jsm = await jetstreamManager(this.nc);
    const config = {
      name: EVENTS_STREAM,
      subjects: [Subjects.allEvents],
      storage: StorageType.File,
      max_age: nanos(this.limits.maxAgeMs),
      max_msgs: this.limits.maxMessages,
      duplicate_window: nanos(2 * 60 * 1000),
      num_replicas: this.limits.replicas ?? 1,
    };
    try {
      await jsm.streams.info(EVENTS_STREAM);
      try {
        await jsm.streams.update(EVENTS_STREAM, { max_age: config.max_age, max_msgs: config.max_msgs });
      } catch (updateError) {
        // agents may create the stream but only an admin may change it; the existing limits stay
        if (!/permissions violation/i.test(String((updateError as Error).message))) throw updateError;
        this.logger.warn({ stream: EVENTS_STREAM }, 'no permission to update the event stream limits; keeping its current limits');
      }
    } catch (error) {
      if (!/stream not found/i.test(String((error as Error).message))) throw error;
      try {
        await jsm.streams.add(config);
      } catch (addError) {
        // Another agent created it in the meantime.
        if (!/already in use|exists/i.test(String((addError as Error).message))) throw addError;
      }
    }
  }

  private persist(): Promise<void> {
    const snapshot = {
      lastSeq: this.outbox.lastSeq,
      pending: [...this.outbox.pending],
      ...(this.outbox.domains ? { domains: { ...this.outbox.domains } } : {}),
    };
    this.persisting = this.persisting.then(() => writeJsonAtomic(this.path, snapshot));
    return this.persisting;
  }

  private kick(): void {
    if (this.flushing || this.closed) return;
    this.flushing = this.flush().finally(() => {
      this.flushing = undefined;
      if (this.outbox.pending.length > 0 && !this.closed) setTimeout(() => this.kick(), 250).unref();
    });
  }

  private async flush(): Promise<void> {
    while (!this.closed && this.outbox.pending.length > 0) {
      const event = this.outbox.pending[0]!;
      try {
        const subject =
          event.kind === 'pool.lifecycle'
            ? Subjects.poolEvent(event.node, event.name, event.type)
            : event.kind === 'network.lifecycle'
              ? Subjects.networkEvent(event.node, event.name, event.type)
            : event.kind === 'snapshot.lifecycle'
              ? Subjects.snapshotEvent(event.node, event.uuid, event.type)
              : Subjects.domainEvent(event.node, event.uuid, event.type);
        await this.js.publish(subject, JSON.stringify(event), {
          msgID: `${event.node}-${event.seq}`,
          timeout: 2000,
        });
      } catch (error) {
        this.logger.warn({ err: error, seq: event.seq }, 'event not published yet; will retry');
        for (const listener of this.failureListeners) listener(event);
        return;
      }
      const lagSeconds = Math.max(0, (Date.now() - Date.parse(event.timestamp)) / 1000);
      for (const listener of this.publishedListeners) listener(event, lagSeconds);
      this.outbox.pending.shift();
      await this.persist();
    }
  }
}

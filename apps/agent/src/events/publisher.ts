import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager, PubHeaders, StorageType } from '@nats-io/jetstream';
import { createInbox, headers as natsHeaders, nanos, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import {
  DomainEventIds,
  EVENTS_STREAM,
  EventTimeHeaders,
  Subjects,
  type DomainEvent,
  type DomainEventDetails,
  type DomainEventName,
  type DomainSnapshotEvent,
  type DomainState,
  type Labels,
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
import { activeContext, endSpan, SpanKind, startSpan, tracingActive, type Context, type Span } from '@virtbus/monitoring';
import type { Logger } from 'pino';
import { EventLog, type BeforeSnapshot, type DomainChange, type RecordedDomain } from './log.js';
import { StateDir } from '../state-dir.js';

export type { RecordedDomain } from './log.js';

export interface EventStreamLimits {
  /** How long the stream keeps events. */
  maxAgeMs: number;
  /** How many events the stream keeps in all. */
  maxMessages: number;
  /** Servers that keep a copy when the stream is created (1 by default); an existing stream keeps its own. */
  replicas?: number;
}

export const DEFAULT_STREAM_LIMITS: EventStreamLimits = { maxAgeMs: 7 * 24 * 3600 * 1000, maxMessages: 1_000_000 };

/** Microseconds since the epoch with sub-ms resolution (Date.now() has 1 ms). */
const epochMicros = (): number => Math.round((performance.timeOrigin + performance.now()) * 1000);

/** Domain and storage pool lifecycle events share the node's sequence and the outbox. */
type NodeEvent = LifecycleEvent | StoragePoolEvent | NetworkEvent | DomainSnapshotEvent | DomainEvent;

/** What publish hooks see of any event. */
export interface PublishedEvent {
  readonly type: string;
  readonly seq: number;
  readonly timestamp: string;
}

/** Publishes in flight at once; acks are still taken in seq order. */
const PUBLISH_WINDOW = 256;
const PUBLISH_TIMEOUT_MS = 2000;
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;

/**
 * Numbers events per node and hands them to JetStream in order. The event log on disk holds every event not yet
 * acknowledged, so neither a NATS outage nor an agent restart loses one or leaves a gap.
 */
export class EventPublisher {
  private log!: EventLog<NodeEvent>;
  private readonly dir: string;
  private readonly legacyPath: string;
  private connected = true;
  private closed = false;
  /** Acks come to `<inbox>.<seq>`: one subscription for all publishes, no request (timer, promise, error object) per event. */
  private readonly inbox: string;
  private acks: Subscription | undefined;
  /** Highest seq sent in this round; a failure sends again from the first unacknowledged one. */
  private sentSeq = 0;
  /** Seqs JetStream acknowledged ahead of an earlier one still unacknowledged. */
  private readonly ackedAhead = new Set<number>();
  /** Fires PUBLISH_TIMEOUT_MS after it is armed: a failure unless the acked seq moved meanwhile. */
  private ackTimer: NodeJS.Timeout | undefined;
  private ackedAtArm = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private backoffMs = BACKOFF_MIN_MS;
  private readonly spans = new Map<number, Span>();
  private settled: (() => void) | undefined;
  private readonly listeners = new Set<(event: LifecycleEvent) => void>();
  /** Emit time (µs since the epoch) of each recorded event until JetStream acknowledges it. */
  private readonly emittedMicros = new Map<number, number>();
  /** The trace context an event was emitted in (the call that caused it), parent of its publish span; kept until acked. */
  private readonly emittedContexts = new Map<number, Context>();
  private readonly publishedListeners = new Set<(event: PublishedEvent, lagSeconds: number) => void>();
  private readonly failureListeners = new Set<(event: PublishedEvent) => void>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly node: string,
    stateDir: string,
    private readonly logger: Logger,
    private readonly limits: EventStreamLimits = DEFAULT_STREAM_LIMITS,
  ) {
    this.dir = StateDir.events(stateDir);
    this.legacyPath = join(stateDir, 'events-outbox.json');
    this.inbox = createInbox((nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix);
  }

  async init(): Promise<void> {
    this.log = await EventLog.open<NodeEvent>({ dir: this.dir, legacyOutboxPath: this.legacyPath, logger: this.logger });
    void this.watchConnection();
    await this.ensureStream();
    this.acks = this.nc.subscribe(`${this.inbox}.*`, { callback: (_error, msg) => this.onAck(msg) });
    this.sentSeq = this.log.ackedSeq;
    // Sent in the write's own callback, before the emits waiting for it resume: no tick between disk and wire.
    this.log.onDurable(() => this.pump());
    this.pump();
  }

  get lastSeq(): number {
    return this.log.lastSeq;
  }

  get pendingCount(): number {
    return this.log.pendingCount;
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

  /** Domains as their last recorded events left them; undefined for a log from before this was recorded. */
  recordedDomains(): ReadonlyMap<string, RecordedDomain> | undefined {
    return this.log.recordedDomains();
  }

  /** Starts recording from the given domains (a log that predates the record). */
  async seedRecordedDomains(domains: ReadonlyMap<string, RecordedDomain>): Promise<void> {
    await this.log.seedDomains(domains);
  }

  /** Definitions recorded after the last snapshot (EventLog.takeDefinitions). */
  takeDefinitions(): Map<string, unknown> {
    return this.log.takeDefinitions();
  }

  /** Runs `hook` before each snapshot of the event log (EventLog.setBeforeSnapshot). */
  setBeforeSnapshot(hook: BeforeSnapshot): void {
    this.log.setBeforeSnapshot(hook);
  }

  /**
   * Records the event durably (event log) and returns once it is on disk; publishing follows in order. `definition`: a
   * new domain's whole record, kept in the log as its durable copy until the next snapshot (see DomainStore.saveUnsynced).
   */
  async emit(
    domain: { uuid: string; name: string; labels?: Labels; id?: number; runtimeCleared?: true },
    change: LifecycleChange,
    state: DomainState,
    reason: StateReason,
    stateChangedAt?: string,
    definition?: unknown,
  ): Promise<LifecycleEvent> {
    // The domain's state goes in the same record as the event: the durable copy of a state change, and at restart the
    // way to tell which domain changes never became events.
    const recorded: DomainChange =
      change.type === 'UNDEFINED'
        ? { uuid: domain.uuid, removed: true }
        : {
            uuid: domain.uuid,
            name: domain.name,
            state,
            reason,
            ...(stateChangedAt ? { stateChangedAt } : {}),
            ...(domain.id !== undefined ? { id: domain.id } : {}),
            ...(domain.runtimeCleared ? { runtimeCleared: true as const } : {}),
          };
    const { event, durable } = this.log.append(
      (seq): LifecycleEvent => ({
        kind: 'domain.lifecycle',
        node: this.node,
        seq,
        timestamp: this.stamp(seq),
        uuid: domain.uuid,
        name: domain.name,
        type: change.type,
        detail: change.detail,
        state,
        reason,
        ...(domain.labels ? { labels: domain.labels } : {}),
      }),
      recorded,
      definition,
    );
    await durable;
    const lifecycle = event as LifecycleEvent;
    for (const listener of this.listeners) listener(lifecycle);
    return lifecycle;
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

  /** A domain event beyond the lifecycle (REBOOT, WATCHDOG…), recorded and published like a lifecycle event. */
  emitDomainEvent(domain: { uuid: string; name: string }, event: DomainEventName, details: DomainEventDetails = {}): Promise<DomainEvent> {
    return this.record((stamp) => ({ kind: 'domain.event', ...stamp, uuid: domain.uuid, name: domain.name, event, eventId: DomainEventIds[event], details }));
  }

  /** Numbers a resource event in the node's sequence, writes it to the log, then lets the publisher send it. */
  private async record<E extends Exclude<NodeEvent, LifecycleEvent>>(build: (stamp: { node: string; seq: number; timestamp: string }) => E): Promise<E> {
    const { event, durable } = this.log.append((seq) => build({ node: this.node, seq, timestamp: this.stamp(seq) }));
    await durable;
    return event as E;
  }

  /** The event's ISO timestamp; its microsecond emit time is kept until the publish (the Virt-Emitted-Us header). */
  private stamp(seq: number): string {
    const micros = epochMicros();
    this.emittedMicros.set(seq, micros);
    if (tracingActive()) this.emittedContexts.set(seq, activeContext());
    return new Date(micros / 1000).toISOString();
  }

  /** Waits until every recorded event is acknowledged by JetStream (or the timeout passes). */
  async drain(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.log.pendingCount > 0 && Date.now() < deadline) await sleep(20);
    return this.log.pendingCount === 0;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    // what is in flight may still be acknowledged (then the acked marker covers it): wait for that, within the publish timeout
    if (this.sentSeq > this.log.ackedSeq) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, PUBLISH_TIMEOUT_MS);
        this.settled = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.settled = undefined;
    clearTimeout(this.ackTimer);
    this.acks?.unsubscribe();
    for (const span of this.spans.values()) endSpan(span, new Error('event publisher closed'));
    this.spans.clear();
    await this.log.close();
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

  /** No new publishes while disconnected: what nats.js buffers then is dropped at reconnect, after later ones went out. */
  private async watchConnection(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type === 'disconnect') {
        this.connected = false;
        // an unacknowledged event, sent or not, is a failed publish: sent again after the reconnect (its msgID dedupes it)
        if (this.log.pendingCount > 0) this.reportFailure(new Error('disconnected from NATS'));
        this.restartRound();
      } else if (status.type === 'reconnect') {
        this.connected = true;
        this.pump();
      }
    }
  }

  /**
   * Sends every durable event not yet sent, keeping at most PUBLISH_WINDOW unacknowledged; acks are taken in seq order
   * (onAck). Runs synchronously when events become durable, when acks free the window, at reconnect and after a backoff.
   */
  private pump(): void {
    if (this.closed || !this.connected || this.retryTimer) return;
    if (this.sentSeq < this.log.ackedSeq) this.sentSeq = this.log.ackedSeq;
    const durable = this.log.durableSeq;
    const limit = this.log.ackedSeq + PUBLISH_WINDOW;
    try {
      while (this.sentSeq < durable && this.sentSeq < limit) this.send(this.log.eventAt(++this.sentSeq)!);
    } catch (error) {
      // nats.js refused it at once (closed, over max_payload): retried, never thrown into the log's write loop or onAck
      this.fail(new Error(`event not sent: ${(error as Error).message}`, { cause: error }));
      return;
    }
    if (this.sentSeq > this.log.ackedSeq && !this.ackTimer) this.armAckTimer();
  }

  private send(event: NodeEvent): void {
    const headers = natsHeaders();
    headers.set(PubHeaders.MsgIdHdr, `${event.node}-${event.seq}`);
    const emitted = this.emittedMicros.get(event.seq);
    if (emitted !== undefined) headers.set(EventTimeHeaders.emitted, String(emitted));
    headers.set(EventTimeHeaders.published, String(epochMicros()));
    const subject = subjectOf(event);
    if (tracingActive() && !this.spans.has(event.seq)) {
      const parent = this.emittedContexts.get(event.seq);
      const attributes = { 'messaging.system': 'nats', 'messaging.operation.type': 'send', 'messaging.destination.name': subject, 'virtbus.event.seq': event.seq };
      this.spans.set(event.seq, startSpan(`publish ${EVENTS_STREAM}`, attributes, { kind: SpanKind.PRODUCER, ...(parent ? { parent } : {}) }));
    }
    this.nc.publish(subject, JSON.stringify(event), { reply: `${this.inbox}.${event.seq}`, headers });
  }

  private armAckTimer(): void {
    this.ackedAtArm = this.log.ackedSeq;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      if (this.sentSeq <= this.log.ackedSeq) return;
      if (this.log.ackedSeq > this.ackedAtArm) this.armAckTimer();
      else this.fail(new Error(`no JetStream ack within ${PUBLISH_TIMEOUT_MS} ms`));
    }, PUBLISH_TIMEOUT_MS);
    this.ackTimer.unref();
  }

  /** A JetStream publish ack (`{stream, seq}`), an API error (`{error}`) or a no-responders status, for the event its subject names. */
  private onAck(msg: Msg): void {
    const seq = Number(msg.subject.slice(this.inbox.length + 1));
    let error: string | undefined;
    if (msg.data.length === 0) error = msg.headers?.code === 503 ? 'no responders: the events stream is not available' : `empty ack (status ${msg.headers?.code ?? 'none'})`;
    else {
      try {
        const ack = msg.json<{ stream?: string; error?: { code?: number; description?: string } }>();
        if (ack.error) error = `JetStream error ${ack.error.code ?? ''}: ${ack.error.description ?? 'unknown'}`;
        else if (!ack.stream) error = 'invalid ack response';
      } catch (parseError) {
        error = `unreadable ack: ${(parseError as Error).message}`;
      }
    }
    if (error !== undefined) {
      this.fail(new Error(`event ${seq} not stored: ${error}`));
      return;
    }
    if (!(seq > this.log.ackedSeq)) return;
    this.ackedAhead.add(seq);
    let next = this.log.ackedSeq + 1;
    const done: NodeEvent[] = [];
    while (this.ackedAhead.delete(next)) done.push(this.log.eventAt(next++)!);
    if (done.length === 0) return;
    this.backoffMs = BACKOFF_MIN_MS;
    this.log.ack(next - 1);
    for (const event of done) {
      this.emittedMicros.delete(event.seq);
      this.emittedContexts.delete(event.seq);
      const span = this.spans.get(event.seq);
      if (span) {
        this.spans.delete(event.seq);
        endSpan(span);
      }
      const lagSeconds = Math.max(0, (Date.now() - Date.parse(event.timestamp)) / 1000);
      for (const listener of this.publishedListeners) listener(publishedView(event), lagSeconds);
    }
    if (this.sentSeq <= this.log.ackedSeq) this.settled?.();
    this.pump();
  }

  /** A publish failed: after a backoff, sends again from the first unacknowledged event. */
  private fail(error: Error): void {
    if (this.retryTimer) return;
    this.reportFailure(error);
    this.restartRound();
    if (this.closed) {
      this.settled?.();
      return;
    }
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.pump();
    }, this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
  }

  private reportFailure(error: Error): void {
    const head = this.log.eventAt(this.log.ackedSeq + 1);
    this.logger.warn({ err: error, seq: head?.seq }, 'event not published yet; will retry');
    if (head) for (const listener of this.failureListeners) listener(publishedView(head));
  }

  private restartRound(): void {
    this.sentSeq = this.log.ackedSeq;
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
  }
}

/** Hooks see a domain event's libvirt name as its type. */
function publishedView(event: NodeEvent): PublishedEvent {
  return event.kind === 'domain.event' ? { type: event.event, seq: event.seq, timestamp: event.timestamp } : event;
}

function subjectOf(event: NodeEvent): string {
  switch (event.kind) {
    case 'pool.lifecycle':
      return Subjects.poolEvent(event.node, event.name, event.type);
    case 'network.lifecycle':
      return Subjects.networkEvent(event.node, event.name, event.type);
    case 'snapshot.lifecycle':
      return Subjects.snapshotEvent(event.node, event.uuid, event.type);
    case 'domain.event':
      return Subjects.domainDetailEvent(event.node, event.uuid, event.event);
    default:
      return Subjects.domainEvent(event.node, event.uuid, event.type);
  }
}

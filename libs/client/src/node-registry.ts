import { setTimeout as sleep } from 'node:timers/promises';
import { Kvm, type KV, type KvWatchEntry } from '@nats-io/kv';
import type { NatsConnection, QueuedIterator } from '@nats-io/transport-node';
import { NODES_BUCKET, NodeRecord, compileValidator, isNodeName, type NodeSummary } from '@virtbus/api-contract';
import type { RetryLogger } from './jetstream-ready.js';

export const DEFAULT_HEARTBEAT_INTERVAL_MS = 5000;
/** A node is online while its last heartbeat is younger than this (or three of its own intervals, if longer). */
export const DEFAULT_ONLINE_WITHIN_MS = 15_000;

const validRecord = compileValidator(NodeRecord);
/** Agents beat every 5 s: a watch silent for 10 s has most likely lost its consumer (or no agent runs; a restart is cheap). */
export const DEFAULT_SILENT_RESTART_MS = 10_000;

export interface HeartbeatOptions {
  kv: KV;
  node: string;
  intervalMs?: number;
  /** The record as of now (domain counts change); `heartbeatAt` and `heartbeatIntervalMs` are filled in. */
  record: () => NodeRecord;
  logger?: RetryLogger & { warn(details: object, message: string): void };
}

export interface Heartbeat {
  /** Ends the loop and writes the record once more with `stoppedAt` (best effort, bounded). */
  stop(options?: { markStopped?: boolean }): Promise<void>;
  /** The record changed (domain counts): write it before the interval ends, at most once per NUDGE_SPACING_MS (while writes fail, once per interval). */
  nudge(): void;
}

/** A nudged registry write waits this long after the previous write, so a burst of changes costs one write a second. */
export const NUDGE_SPACING_MS = 1000;

/** Refreshes the node's registry entry every interval: the liveness signal the gateway's node list reads. */
export function startHeartbeat(options: HeartbeatOptions): Heartbeat {
  const intervalMs = options.intervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
  const abort = new AbortController();
  let failing = false;
  const write = (extra: Partial<NodeRecord> = {}) =>
    options.kv.put(options.node, JSON.stringify({ ...options.record(), heartbeatAt: new Date().toISOString(), heartbeatIntervalMs: intervalMs, ...extra }));
  let nudged = false;
  let wake: (() => void) | undefined;
  let lastWrite = Date.now();
  const loop = (async () => {
    while (!abort.signal.aborted) {
      const tick = new AbortController();
      const stopTick = () => tick.abort();
      abort.signal.addEventListener('abort', stopTick, { once: true });
      wake = stopTick;
      if (!nudged) await sleep(intervalMs, undefined, { signal: tick.signal }).catch(() => undefined);
      abort.signal.removeEventListener('abort', stopTick);
      wake = undefined;
      if (abort.signal.aborted) break;
      // a nudge keeps its spacing from the previous write; after a failed write, the whole interval (no retry a second in an outage)
      const spacing = lastWrite + (failing ? intervalMs : Math.min(NUDGE_SPACING_MS, intervalMs)) - Date.now();
      if (nudged && spacing > 0) await sleep(spacing, undefined, { signal: abort.signal }).catch(() => undefined);
      if (abort.signal.aborted) break;
      nudged = false;
      lastWrite = Date.now();
      try {
        await write();
        if (failing) options.logger?.info({ node: options.node }, 'heartbeat written again');
        failing = false;
      } catch (error) {
        // the bus is down or electing: the next beat tries again
        if (!failing) options.logger?.warn({ err: error, node: options.node }, 'heartbeat not written; retrying every interval');
        failing = true;
      }
    }
  })();
  return {
    nudge() {
      nudged = true;
      wake?.();
    },
    async stop(stopOptions = {}) {
      abort.abort();
      await loop;
      if (stopOptions.markStopped !== false) await Promise.race([write({ stoppedAt: new Date().toISOString() }).catch(() => undefined), sleep(2000)]);
    },
  };
}

/** One node as the registry cache knows it. */
export interface RegisteredNode {
  record: NodeRecord;
  /** Server time the bus stored the last entry (ms since the epoch). */
  storedAt: number;
  /** Local time the gateway last saw a heartbeat (ms): receipt time for live updates, `storedAt` for the initial load. */
  seenAt: number;
  /** Local time a call found no responder for the node (cleared by a later heartbeat). */
  unreachableAt?: number;
}

export interface NodeRegistryOptions {
  onlineWithinMs?: number;
  logger?: RetryLogger & { warn(details: object, message: string): void };
  /** Restart the watch when nothing arrived for this long (a watch whose consumer's server died is silent). */
  silentRestartMs?: number;
}

/**
 * A watch-fed copy of the `virt_nodes` bucket: node lists are answered from memory, without asking any agent.
 * The watch restarts after a reconnect, an error, or a silence longer than agents' heartbeats allow.
 */
export class NodeRegistryCache {
  private readonly nodes = new Map<string, RegisteredNode>();
  private readonly onlineWithinMs: number;
  private readonly silentRestartMs: number;
  private loaded = false;
  private readonly loadedWaiters = new Set<() => void>();
  private closed = false;
  private running: Promise<void> | undefined;
  private watcher: QueuedIterator<KvWatchEntry> | undefined;
  private lastMessageAt = Date.now();
  private restartRequested = false;
  private readonly listeners = new Set<(node: string, entry: RegisteredNode | undefined) => void>();
  private sortedNames: string[] | undefined;

  constructor(
    private readonly nc: NatsConnection,
    options: NodeRegistryOptions = {},
  ) {
    this.onlineWithinMs = options.onlineWithinMs ?? DEFAULT_ONLINE_WITHIN_MS;
    this.silentRestartMs = options.silentRestartMs ?? DEFAULT_SILENT_RESTART_MS;
    this.logger = options.logger;
  }

  private readonly logger: NodeRegistryOptions['logger'];

  get onlineWithinSeconds(): number {
    return this.onlineWithinMs / 1000;
  }

  /** Starts watching (idempotent). */
  start(): void {
    if (this.running || this.closed) return;
    this.running = this.run();
    void (async () => {
      for await (const status of this.nc.status()) {
        if (this.closed) break;
        // the watch's push consumer may have lived on the server we lost
        if (status.type === 'reconnect') this.restart();
      }
    })().catch(() => undefined);
  }

  /** Resolves once the bucket's current entries are loaded (or the bucket does not exist yet); false on timeout. */
  async ready(timeoutMs: number): Promise<boolean> {
    this.start();
    if (this.loaded) return true;
    let done: (() => void) | undefined;
    const loaded = new Promise<void>((resolve) => {
      done = resolve;
      this.loadedWaiters.add(resolve);
    });
    const result = await Promise.race([loaded.then(() => true), sleep(timeoutMs).then(() => false)]);
    this.loadedWaiters.delete(done!);
    return result;
  }

  get(node: string): RegisteredNode | undefined {
    return this.nodes.get(node);
  }

  /** Whether the node's agent counts as alive now. */
  isOnline(entry: RegisteredNode, now = Date.now()): boolean {
    if (entry.record.stoppedAt !== undefined) return false;
    if (entry.unreachableAt !== undefined && entry.unreachableAt >= entry.seenAt) return false;
    const bound = Math.max(this.onlineWithinMs, 3 * (entry.record.heartbeatIntervalMs ?? 0));
    return entry.record.heartbeatIntervalMs !== undefined && now - entry.seenAt <= bound;
  }

  /** Every registered node in name order, as the API lists them. */
  summaries(now = Date.now()): NodeSummary[] {
    return this.names().map((node) => this.summary(node, this.nodes.get(node)!, now));
  }

  /** Registered node names in code-unit order (kept sorted until a node comes or goes). */
  names(): readonly string[] {
    this.sortedNames ??= [...this.nodes.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return this.sortedNames;
  }

  /** One node as the API lists it; `online` may be given to build the other variant of a cached answer. */
  summary(node: string, entry: RegisteredNode, now = Date.now(), online = this.isOnline(entry, now)): NodeSummary {
    const { record } = entry;
    return {
      node,
      id: record.serviceId ?? '',
      version: record.version,
      online,
      ...(record.startedAt ? { startedAt: record.startedAt } : {}),
      lastHeartbeat: new Date(entry.storedAt).toISOString(),
      ...(record.drivers ? { drivers: record.drivers } : {}),
      ...(record.domains ? { domains: record.domains } : {}),
    };
  }

  /** Tells `listener` about every entry applied (undefined: the node was deleted); returns the unsubscribe. */
  onChange(listener: (node: string, entry: RegisteredNode | undefined) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(node: string, entry: RegisteredNode | undefined): void {
    for (const listener of this.listeners) listener(node, entry);
  }

  /** A call found no responder for the node: it is offline until its next heartbeat. */
  markUnreachable(node: string): void {
    const entry = this.nodes.get(node);
    if (entry) entry.unreachableAt = Date.now();
  }

  /** A call got an answer from the node: first-hand news that it is alive, whatever the last heartbeat said. */
  markReachable(node: string): void {
    const entry = this.nodes.get(node);
    if (!entry) return;
    delete entry.unreachableAt;
    entry.seenAt = Math.max(entry.seenAt, Date.now());
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.stop();
    for (const waiter of this.loadedWaiters) waiter();
    await this.running;
  }

  private restart(): void {
    this.restartRequested = true;
    this.watcher?.stop();
  }

  private markLoaded(): void {
    this.loaded = true;
    for (const waiter of this.loadedWaiters) waiter();
    this.loadedWaiters.clear();
  }

  private apply(entry: KvWatchEntry, live: boolean): void {
    this.lastMessageAt = Date.now();
    if (!isNodeName(entry.key)) return;
    if (entry.operation !== 'PUT') {
      if (this.nodes.delete(entry.key)) this.sortedNames = undefined;
      this.notify(entry.key, undefined);
      return;
    }
    let record: unknown;
    try {
      record = entry.json();
    } catch {
      return;
    }
    if (!validRecord.check(record)) {
      this.logger?.warn({ node: entry.key }, 'ignoring a node registry entry that is not a NodeRecord');
      return;
    }
    const storedAt = entry.created.getTime();
    const previous = this.nodes.get(entry.key);
    // receipt time of a live update has no clock skew; the initial load only has the bus's time
    const seenAt = live ? Date.now() : storedAt;
    const next: RegisteredNode = { record, storedAt, seenAt: Math.max(seenAt, previous?.seenAt ?? 0), ...(previous?.unreachableAt !== undefined ? { unreachableAt: previous.unreachableAt } : {}) };
    if (!previous) this.sortedNames = undefined;
    this.nodes.set(entry.key, next);
    this.notify(entry.key, next);
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      try {
        await this.watchOnce();
        failures = 0;
      } catch (error) {
        const missing = /stream not found/i.test(String((error as Error).message));
        // no agent registered yet: an empty list is the truth
        if (missing) this.markLoaded();
        else if (failures === 0) this.logger?.warn({ err: error }, 'node registry watch failed; retrying');
        failures++;
        if (!this.closed) await sleep(Math.min(5000, 250 * 2 ** Math.min(failures, 5)) * (0.5 + Math.random() / 2));
      }
    }
  }

  private async watchOnce(): Promise<void> {
    const kv = await new Kvm(this.nc).open(NODES_BUCKET);
    this.restartRequested = false;
    const watcher = await kv.watch();
    this.watcher = watcher;
    this.lastMessageAt = Date.now();
    let initialDone = false;
    let received = 0;
    const silence = setInterval(() => {
      if (Date.now() - this.lastMessageAt > this.silentRestartMs) this.restart();
    }, Math.min(5000, this.silentRestartMs)).unref();
    // the last entry of the initial replay is the first flagged isUpdate; an empty bucket replays nothing at all
    const empty = setTimeout(() => {
      if (received === 0 && !initialDone) {
        initialDone = true;
        this.markLoaded();
      }
    }, 250).unref();
    try {
      if (this.restartRequested || this.closed) return;
      for await (const entry of watcher) {
        received++;
        // the replay's last entry is already flagged isUpdate, so "live" starts after it
        this.apply(entry, initialDone);
        if (entry.isUpdate && !initialDone) {
          initialDone = true;
          this.markLoaded();
        }
      }
    } finally {
      clearTimeout(empty);
      clearInterval(silence);
      this.watcher = undefined;
    }
  }
}

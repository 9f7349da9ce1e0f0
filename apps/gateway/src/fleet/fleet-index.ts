import { setTimeout as sleep } from 'node:timers/promises';
import {
  compareKeys,
  decodeContinueToken,
  encodeContinueToken,
  matchesLabelSelector,
  parseLabelSelector,
  takePage,
  VirtError,
  type Domain,
  type DomainDriver,
  type DomainList,
  type DomainListRequest,
  type FleetDomain,
  type FleetDomainList,
  type FleetDomainListRequest,
  type LifecycleEvent,
} from '@virtbus/api-contract';

/** How the index reaches agents: one page of a node's domain.list, and one domain (undefined: it is gone). */
export interface FleetSource {
  list(node: string, query: DomainListRequest): Promise<DomainList>;
  describe(node: string, uuid: string): Promise<Pick<Domain, 'driver' | 'state' | 'stateChangedAt'> | undefined>;
}

export interface FleetIndexOptions {
  /** Nodes listed at once (first load and resyncs). */
  concurrency?: number;
  /** Domains per domain.list page while syncing. */
  pageLimit?: number;
  /** First wait before a failed sync is tried again (doubles up to maxRetryMs). */
  retryMs?: number;
  maxRetryMs?: number;
  /** Events kept while a node is being listed; past this the sync starts over. */
  maxBuffered?: number;
  logger?: { warn(details: object, message: string): void };
}

/** Any numbered event of a node (every family shares the node's sequence); lifecycle events also change the index. */
export type NumberedEvent = { kind: string; node: string; seq: number } | LifecycleEvent;

/** A domain whose driver is still being asked for is kept without one and not listed until it is known. */
type Entry = Omit<FleetDomain, 'driver'> & { driver?: DomainDriver };

interface NodeState {
  generation: string;
  domains: Map<string, Entry>;
  /** The node's list sorted by (name, uuid), rebuilt after a change. */
  sorted: FleetDomain[] | undefined;
  /** Last applied event sequence; undefined until an event follows a sync. */
  lastSeq: number | undefined;
  synced: boolean;
  /** Set while a sync is queued or running; events go to `buffer` meanwhile. */
  syncing: boolean;
  /** Another sync is wanted once the running one ends (a gap while listing, a new agent). */
  again: boolean;
  buffer: NumberedEvent[];
  failures: number;
  removed: boolean;
}

const isLifecycle = (event: NumberedEvent): event is LifecycleEvent => event.kind === 'domain.lifecycle';

/**
 * The gateway's fleet-wide domain index: node → uuid → summary. Each node is listed once when it appears (a bounded
 * number at a time), then kept current from its events; a sequence gap, a new agent or a reconnect lists it again.
 */
export class FleetIndex {
  private readonly nodes = new Map<string, NodeState>();
  private sortedNodes: string[] | undefined;
  private readonly queue: string[] = [];
  private active = 0;
  private closed = false;
  private readonly waiters = new Set<() => void>();
  private readonly concurrency: number;
  private readonly pageLimit: number;
  private readonly retryMs: number;
  private readonly maxRetryMs: number;
  private readonly maxBuffered: number;

  constructor(
    private readonly source: FleetSource,
    private readonly options: FleetIndexOptions = {},
  ) {
    this.concurrency = options.concurrency ?? 8;
    this.pageLimit = options.pageLimit ?? 1000;
    this.retryMs = options.retryMs ?? 1000;
    this.maxRetryMs = options.maxRetryMs ?? 30_000;
    this.maxBuffered = options.maxBuffered ?? 10_000;
  }

  /** A node is in the registry; a new generation (agent restarted with other state) lists it again. */
  setNode(node: string, generation: string): void {
    const state = this.nodes.get(node);
    if (state && state.generation === generation) return;
    if (state) {
      state.generation = generation;
      this.resync(node);
      return;
    }
    this.sortedNodes = undefined;
    this.nodes.set(node, {
      generation,
      domains: new Map(),
      sorted: undefined,
      lastSeq: undefined,
      synced: false,
      syncing: false,
      again: false,
      buffer: [],
      failures: 0,
      removed: false,
    });
    this.resync(node);
  }

  /** The node left the registry: its domains drop out. */
  removeNode(node: string): void {
    const state = this.nodes.get(node);
    if (!state) return;
    state.removed = true;
    this.nodes.delete(node);
    this.sortedNodes = undefined;
    this.wake();
  }

  /** Lists every node again (the event subscription may have missed events, e.g. over a reconnect). */
  resyncAll(): void {
    for (const node of this.nodes.keys()) this.resync(node);
  }

  /** Lists the node again; events arriving meanwhile are replayed on top of the new list. */
  resync(node: string): void {
    const state = this.nodes.get(node);
    if (!state || this.closed) return;
    if (state.syncing) {
      state.again = true;
      return;
    }
    state.syncing = true;
    state.buffer = [];
    this.queue.push(node);
    this.pump();
  }

  /** One event from the bus (any family: they share the node's sequence, so each one counts for gap detection). */
  applyEvent(event: NumberedEvent): void {
    const state = this.nodes.get(event.node);
    if (!state) return;
    if (state.syncing) {
      if (state.buffer.length >= this.maxBuffered) {
        state.buffer = [];
        state.again = true;
      } else state.buffer.push(event);
      return;
    }
    if (state.lastSeq !== undefined) {
      // at-least-once delivery: a repeat is dropped
      if (event.seq <= state.lastSeq) return;
      if (event.seq > state.lastSeq + 1) {
        this.options.logger?.warn({ node: event.node, expected: state.lastSeq + 1, got: event.seq }, 'fleet index: event sequence gap; listing the node again');
        this.resync(event.node);
        return;
      }
    }
    state.lastSeq = event.seq;
    if (isLifecycle(event)) this.applyLifecycle(event.node, state, event);
  }

  /** Nodes whose entries are not current (not yet listed, being listed again, or failing). */
  staleNodes(): string[] {
    // asked on every page: one pass over the nodes, no intermediate arrays
    const stale: string[] = [];
    for (const [node, state] of this.nodes) if (!state.synced || state.syncing) stale.push(node);
    return stale.sort(byCodeUnits);
  }

  /** Resolves true once every known node is synced, false after `timeoutMs`. */
  async whenSynced(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.staleNodes().length > 0) {
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) return false;
      let wake: (() => void) | undefined;
      const woken = new Promise<void>((resolve) => {
        wake = resolve;
        this.waiters.add(resolve);
      });
      const timer = new AbortController();
      await Promise.race([woken, sleep(left, undefined, { signal: timer.signal }).catch(() => undefined)]);
      timer.abort();
      this.waiters.delete(wake!);
    }
    return true;
  }

  /**
   * One page of the fleet list in (node, name, uuid) order over the nodes `visible` lets through. Only the page's
   * items are collected: nodes and domains before the token are skipped by search, and the rest is counted (by
   * size without filters), so a call costs the page plus one step per node, not one per domain of the fleet.
   * Another order (`sort`, `order`) costs one pass over the visible domains and a sort of those after the token.
   */
  page(query: FleetDomainListRequest, visible: (node: string) => boolean, maxBytes: number): FleetDomainList {
    const selector = parseLabelSelector(query.labelSelector ?? '');
    const search = query.search?.toLowerCase();
    const filtered = query.state !== undefined || query.driver !== undefined || query.prefix !== undefined || query.labelSelector !== undefined || search !== undefined;
    const matches = (domain: FleetDomain): boolean =>
      (query.state === undefined || domain.state === query.state) &&
      (query.driver === undefined || domain.driver === query.driver) &&
      (query.prefix === undefined || domain.name.startsWith(query.prefix)) &&
      (search === undefined || domain.name.toLowerCase().includes(search) || domain.node.toLowerCase().includes(search) || domain.state.includes(search)) &&
      matchesLabelSelector(domain.labels, selector);
    if ((query.sort ?? 'node') !== 'node' || query.order === 'desc') return this.orderedPage(query, matches, visible, maxBytes);
    const after = query.continue === undefined ? undefined : decodeContinueToken(query.continue);
    if (after !== undefined && after.length !== 3) throw new VirtError('INVALID_ARG', 'continue token of another sort order');
    const limit = query.limit ?? Number.POSITIVE_INFINITY;
    const candidates: FleetDomain[] = [];
    let beyond = 0;
    for (const node of this.nodeNames()) {
      if (after !== undefined && node < after[0]!) continue;
      if (!visible(node)) continue;
      const sorted = this.sortedOf(this.nodes.get(node)!);
      let start = 0;
      if (after !== undefined && node === after[0]) {
        let high = sorted.length;
        while (start < high) {
          const middle = (start + high) >>> 1;
          const domain = sorted[middle]!;
          if (compareKeys([domain.node, domain.name, domain.uuid], after) <= 0) start = middle + 1;
          else high = middle;
        }
      }
      let index = start;
      for (; index < sorted.length && candidates.length < limit; index++) if (matches(sorted[index]!)) candidates.push(sorted[index]!);
      if (!filtered) beyond += sorted.length - index;
      else for (; index < sorted.length; index++) if (matches(sorted[index]!)) beyond++;
    }
    // the candidates start after the token already; takePage only applies the limit and the byte bound
    return this.answer(candidates, (domain) => [domain.node, domain.name, domain.uuid], query.limit, beyond, visible, maxBytes);
  }

  /** A page in `sort` column order (then node, name, uuid), every key reversed for `desc`; the token names its order. */
  private orderedPage(query: FleetDomainListRequest, matches: (domain: FleetDomain) => boolean, visible: (node: string) => boolean, maxBytes: number): FleetDomainList {
    const column = query.sort ?? 'node';
    const sign = query.order === 'desc' ? -1 : 1;
    const tag = `${column}:${query.order ?? 'asc'}`;
    const keyOf = (domain: FleetDomain) => [tag, domain[column], domain.node, domain.name, domain.uuid];
    const after = query.continue === undefined ? undefined : decodeContinueToken(query.continue);
    if (after !== undefined && (after.length !== 5 || after[0] !== tag)) throw new VirtError('INVALID_ARG', 'continue token of another sort order');
    const keyed: { key: string[]; domain: FleetDomain }[] = [];
    for (const node of this.nodeNames()) {
      if (!visible(node)) continue;
      for (const domain of this.sortedOf(this.nodes.get(node)!)) {
        if (!matches(domain)) continue;
        const key = keyOf(domain);
        if (after === undefined || sign * compareKeys(key, after) > 0) keyed.push({ key, domain });
      }
    }
    keyed.sort((a, b) => sign * compareKeys(a.key, b.key));
    return this.answer(keyed.map((entry) => entry.domain), keyOf, query.limit, 0, visible, maxBytes);
  }

  /** The reply: `candidates` (in order, after the token) cut to the limit and byte bound; `beyond` more match past them. */
  private answer(candidates: FleetDomain[], keyOf: (domain: FleetDomain) => string[], limit: number | undefined, beyond: number, visible: (node: string) => boolean, maxBytes: number): FleetDomainList {
    const stale = this.staleNodes().filter(visible);
    const envelope = stale.reduce((bytes, node) => bytes + node.length + 3, 0);
    const page = takePage(candidates, { keyOf, view: (domain) => domain, query: { ...(limit ? { limit } : {}) }, maxBytes: maxBytes - envelope });
    const remaining = page.remaining + beyond;
    const last = page.items.at(-1);
    return {
      domains: page.items,
      ...(remaining > 0 && last ? { continue: encodeContinueToken(keyOf(last)) } : {}),
      remaining,
      asOf: new Date().toISOString(),
      ...(stale.length > 0 ? { stale } : {}),
    };
  }

  close(): void {
    this.closed = true;
    this.queue.length = 0;
    this.wake();
  }

  /** Known nodes in code-unit order, kept until a node comes or goes. */
  private nodeNames(): string[] {
    this.sortedNodes ??= [...this.nodes.keys()].sort(byCodeUnits);
    return this.sortedNodes;
  }

  private sortedOf(state: NodeState): FleetDomain[] {
    state.sorted ??= [...state.domains.values()]
      .filter((entry): entry is FleetDomain => entry.driver !== undefined)
      .sort((a, b) => compareKeys([a.name, a.uuid], [b.name, b.uuid]));
    return state.sorted;
  }

  private applyLifecycle(node: string, state: NodeState, event: LifecycleEvent): void {
    state.sorted = undefined;
    if (event.type === 'UNDEFINED') {
      state.domains.delete(event.uuid);
      return;
    }
    const previous = state.domains.get(event.uuid);
    const entry: Entry = {
      node,
      uuid: event.uuid,
      name: event.name,
      state: event.state,
      reason: event.reason,
      ...(event.labels && Object.keys(event.labels).length > 0 ? { labels: event.labels } : {}),
      stateChangedAt: previous && previous.state === event.state ? previous.stateChangedAt : event.timestamp,
      ...(previous?.driver ? { driver: previous.driver } : {}),
    };
    state.domains.set(event.uuid, entry);
    if (!previous) void this.learnDriver(node, state, event.uuid);
  }

  /** Events do not carry the driver: a domain first seen in an event is asked for once. */
  private async learnDriver(node: string, state: NodeState, uuid: string): Promise<void> {
    try {
      const domain = await this.source.describe(node, uuid);
      const entry = state.domains.get(uuid);
      if (!entry || state.removed) return;
      state.sorted = undefined;
      // gone already: its UNDEFINED event follows (or was missed, which a gap reveals)
      if (domain === undefined) {
        state.domains.delete(uuid);
        return;
      }
      entry.driver = domain.driver;
      // the agent's own time of the change beats the event's (a few ms later) while the state is the same
      if (domain.state === entry.state) entry.stateChangedAt = domain.stateChangedAt;
    } catch (error) {
      this.options.logger?.warn({ err: error, node, uuid }, 'fleet index: could not learn a domain driver; listing the node again');
      this.resync(node);
    }
  }

  private pump(): void {
    while (!this.closed && this.active < this.concurrency && this.queue.length > 0) {
      const node = this.queue.shift()!;
      const state = this.nodes.get(node);
      if (!state || state.removed) continue;
      this.active++;
      void this.sync(node, state).finally(() => {
        this.active--;
        this.pump();
      });
    }
  }

  private async sync(node: string, state: NodeState): Promise<void> {
    state.again = false;
    let listed: Map<string, Entry>;
    try {
      listed = await this.listAll(node);
    } catch (error) {
      state.failures++;
      const waitMs = Math.min(this.maxRetryMs, this.retryMs * 2 ** Math.min(state.failures - 1, 10));
      if (state.failures === 1) this.options.logger?.warn({ err: error, node }, 'fleet index: listing the node failed; retrying');
      // last known entries stay (the node is reported stale) until a list succeeds; the slot is free meanwhile
      setTimeout(() => {
        this.requeue(node, state);
        this.pump();
      }, waitMs * (0.5 + Math.random() / 2)).unref();
      return;
    }
    if (state.removed || this.closed) return;
    state.failures = 0;
    if (state.again) {
      this.requeue(node, state);
      return;
    }
    // events that arrived while listing are newer than or as new as the list: replayed in order they win
    const buffer = state.buffer;
    state.buffer = [];
    state.domains = listed;
    state.sorted = undefined;
    state.lastSeq = undefined;
    state.syncing = false;
    state.synced = true;
    let gap = false;
    for (const event of buffer.sort((a, b) => a.seq - b.seq)) {
      if (state.lastSeq !== undefined && event.seq > state.lastSeq + 1) gap = true;
      if (state.lastSeq !== undefined && event.seq <= state.lastSeq) continue;
      state.lastSeq = event.seq;
      if (isLifecycle(event)) this.applyLifecycle(node, state, event);
    }
    if (gap) this.resync(node);
    this.wake();
  }

  private requeue(node: string, state: NodeState): void {
    if (state.removed || this.closed) return;
    state.buffer = [];
    this.queue.push(node);
  }

  private async listAll(node: string): Promise<Map<string, Entry>> {
    const domains = new Map<string, Entry>();
    let token: string | undefined;
    do {
      const page = await this.source.list(node, { limit: this.pageLimit, ...(token ? { continue: token } : {}) });
      for (const domain of page.domains) {
        domains.set(domain.uuid, {
          node,
          uuid: domain.uuid,
          name: domain.name,
          driver: domain.driver,
          state: domain.state,
          reason: domain.reason,
          ...(domain.config.labels && Object.keys(domain.config.labels).length > 0 ? { labels: domain.config.labels } : {}),
          stateChangedAt: domain.stateChangedAt,
        });
      }
      token = page.continue;
    } while (token !== undefined && !this.closed);
    return domains;
  }

  private wake(): void {
    for (const waiter of this.waiters) waiter();
    this.waiters.clear();
  }
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

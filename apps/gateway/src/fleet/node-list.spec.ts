import { takePage, type NodeList, type NodeRecord, type NodeSummary } from '@virtbus/api-contract';
import type { RegisteredNode } from '@virtbus/client';
import { describe, expect, it } from 'vitest';
import { NodeListJson } from './node-list.js';

const BYTES = 1024 * 1024;
const everyone = () => true;

/** The registry cache's read side over a plain map: online = a flag per node, as isOnline would decide it. */
class Registry {
  readonly entries = new Map<string, RegisteredNode>();
  readonly offline = new Set<string>();
  readonly onlineWithinSeconds = 15;

  beat(node: string, extra: Partial<NodeRecord> = {}, storedAt = Date.UTC(2026, 0, 1)): void {
    const record: NodeRecord = { node, version: '1.0.0', registeredAt: '2026-01-01T00:00:00.000Z', serviceId: `id-${node}`, heartbeatIntervalMs: 5000, drivers: ['test'], ...extra };
    this.entries.set(node, { record, storedAt, seenAt: storedAt });
  }

  names(): readonly string[] {
    return [...this.entries.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  get(node: string): RegisteredNode | undefined {
    return this.entries.get(node);
  }

  isOnline(entry: RegisteredNode): boolean {
    return !this.offline.has(entry.record.node);
  }

  summary(node: string, entry: RegisteredNode, _now?: number, online = this.isOnline(entry)): NodeSummary {
    return { node, id: entry.record.serviceId ?? '', version: entry.record.version, online, lastHeartbeat: new Date(entry.storedAt).toISOString(), ...(entry.record.drivers ? { drivers: entry.record.drivers } : {}) };
  }

  /** What the route answered before the cache: the summaries through takePage, serialized whole. */
  expected(query: { limit?: number; continue?: string }, visible: (node: string) => boolean = everyone, maxBytes = BYTES): NodeList {
    const summaries = this.names()
      .filter(visible)
      .map((node) => this.summary(node, this.entries.get(node)!));
    const page = takePage(summaries, { keyOf: (summary) => [summary.node], view: (summary) => summary, query, maxBytes });
    return { nodes: page.items, ...(page.continue ? { continue: page.continue, remaining: page.remaining } : {}), onlineWithinSeconds: 15 };
  }
}

const parse = (bytes: Buffer): NodeList => JSON.parse(bytes.toString()) as NodeList;

describe('NodeListJson', () => {
  it('answers what serializing the summaries would, page by page, for every caller', () => {
    const registry = new Registry();
    for (const node of ['n3', 'n1', 'n10', 'n2', 'b', 'ü']) registry.beat(node);
    const list = new NodeListJson(registry);
    expect(parse(list.page({}, everyone, BYTES))).toEqual(registry.expected({}));
    const first = parse(list.page({ limit: 4 }, everyone, BYTES));
    expect(first).toEqual(registry.expected({ limit: 4 }));
    expect(parse(list.page({ limit: 4, continue: first.continue! }, everyone, BYTES))).toEqual(registry.expected({ limit: 4, continue: first.continue! }));
    const some = (node: string) => node.startsWith('n');
    expect(parse(list.page({}, some, BYTES))).toEqual(registry.expected({}, some));
    // the byte bound cuts the page where takePage would
    expect(parse(list.page({}, everyone, 400))).toEqual(registry.expected({}, everyone, 400));
  });

  it('follows a new heartbeat entry, a node going offline, a new node and a removed one', () => {
    const registry = new Registry();
    registry.beat('n1');
    registry.beat('n2');
    const list = new NodeListJson(registry);
    list.page({}, everyone, BYTES);
    registry.beat('n1', { domains: { total: 3, running: 1 } }, Date.UTC(2026, 0, 2));
    registry.offline.add('n2');
    registry.beat('n0');
    expect(parse(list.page({}, everyone, BYTES))).toEqual(registry.expected({}));
    registry.entries.delete('n1');
    registry.offline.clear();
    expect(parse(list.page({}, everyone, BYTES))).toEqual(registry.expected({}));
  });

  it('answers an empty registry with an empty list', () => {
    expect(parse(new NodeListJson(new Registry()).page({}, everyone, BYTES))).toEqual({ nodes: [], onlineWithinSeconds: 15 });
  });
});

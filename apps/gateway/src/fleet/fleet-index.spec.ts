import { randomUUID } from 'node:crypto';
import { takePage, type Domain, type DomainListRequest, type FleetDomain, type FleetDomainListRequest, type LifecycleEvent } from '@virtbus/api-contract';
import { describe, expect, it } from 'vitest';
import { FleetIndex, type FleetSource } from './fleet-index.js';

const BYTES = 1024 * 1024;
const everyone = () => true;

/** An in-memory stand-in for the agents: domains per node, with a count of list calls and an optional gate. */
class Nodes implements FleetSource {
  readonly domains = new Map<string, Map<string, Domain>>();
  listCalls = 0;
  failing = new Set<string>();
  gate: Promise<void> | undefined;

  add(node: string, name: string, labels: Record<string, string> = {}, state: Domain['state'] = 'shutoff'): Domain {
    const uuid = randomUUID();
    const domain = {
      uuid,
      name,
      node,
      driver: 'test',
      state,
      reason: 'unknown',
      persistent: true,
      autostart: false,
      stateChangedAt: '2026-01-01T00:00:00.000Z',
      config: { name, uuid, driver: 'test', vcpus: 1, memory: 64, os: {}, disks: [], nics: [], console: {}, autostart: false, labels },
    } as unknown as Domain;
    let map = this.domains.get(node);
    if (!map) this.domains.set(node, (map = new Map()));
    map.set(uuid, domain);
    return domain;
  }

  async list(node: string, query: DomainListRequest) {
    this.listCalls++;
    await this.gate;
    if (this.failing.has(node)) throw new Error(`node ${node} unreachable`);
    const sorted = [...(this.domains.get(node)?.values() ?? [])].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const page = takePage(sorted, { keyOf: (d) => [d.name, d.uuid], view: (d) => d, query, maxBytes: BYTES });
    return { domains: page.items, ...(page.continue ? { continue: page.continue } : {}), remaining: page.remaining };
  }

  async describe(node: string, uuid: string) {
    return this.domains.get(node)?.get(uuid);
  }
}

function event(domain: Domain, seq: number, type: LifecycleEvent['type'], state: Domain['state']): LifecycleEvent {
  const labels = domain.config.labels ?? {};
  return {
    kind: 'domain.lifecycle',
    node: domain.node,
    seq,
    timestamp: new Date().toISOString(),
    uuid: domain.uuid,
    name: domain.name,
    type,
    detail: type === 'DEFINED' ? 'ADDED' : type === 'UNDEFINED' ? 'REMOVED' : type === 'STARTED' ? 'BOOTED' : 'SHUTDOWN',
    state,
    reason: 'unknown',
    ...(Object.keys(labels).length > 0 ? { labels } : {}),
  } as LifecycleEvent;
}

/** An index synced over one node `n1` with one domain `web`. */
async function oneWebDomain(): Promise<{ nodes: Nodes; web: Domain; index: FleetIndex }> {
  const nodes = new Nodes();
  const web = nodes.add('n1', 'web');
  const index = new FleetIndex(nodes);
  index.setNode('n1', 'g1');
  await index.whenSynced(5000);
  return { nodes, web, index };
}

function allPages(index: FleetIndex, query: FleetDomainListRequest = {}, visible: (node: string) => boolean = everyone): FleetDomain[] {
  const seen: FleetDomain[] = [];
  let token: string | undefined;
  do {
    const page = index.page({ ...query, ...(token ? { continue: token } : {}) }, visible, BYTES);
    seen.push(...page.domains);
    token = page.continue;
  } while (token);
  return seen;
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('FleetIndex', () => {
  it('lists every node once, pages in (node, name, uuid) order and filters like the per-node list', async () => {
    const nodes = new Nodes();
    for (const node of ['b', 'a', 'c']) for (let i = 0; i < 5; i++) nodes.add(node, `vm-${i}`, { tier: i % 2 === 0 ? 'web' : 'db' }, i === 0 ? 'running' : 'shutoff');
    const index = new FleetIndex(nodes, { pageLimit: 2, concurrency: 2 });
    for (const node of ['a', 'b', 'c']) index.setNode(node, 'g1');
    expect(await index.whenSynced(5000)).toBe(true);
    expect(nodes.listCalls).toBe(9); // 5 domains in pages of 2, per node

    const seen = allPages(index, { limit: 4 });
    expect(seen.map((d) => `${d.node}/${d.name}`)).toEqual(['a', 'b', 'c'].flatMap((node) => [0, 1, 2, 3, 4].map((i) => `${node}/vm-${i}`)));
    expect(new Set(seen.map((d) => d.uuid)).size).toBe(15);
    expect(allPages(index, { state: 'running' }).map((d) => d.node)).toEqual(['a', 'b', 'c']);
    expect(allPages(index, { labelSelector: 'tier=db' })).toHaveLength(6);
    expect(allPages(index, { prefix: 'vm-4', driver: 'test' })).toHaveLength(3);
    expect(allPages(index, { driver: 'qemu' })).toHaveLength(0);
    expect(allPages(index, {}, (node) => node === 'b').every((d) => d.node === 'b')).toBe(true);
    expect(index.page({}, everyone, BYTES).stale).toBeUndefined();
    index.close();
  });

  it('answers every page as filtering the whole fleet list and paging it would (items, remaining, continue), byte bound included', async () => {
    const nodes = new Nodes();
    for (const node of ['n2', 'n10', 'n1', 'm', 'empty']) {
      const count = node === 'empty' ? 0 : node.length * 3;
      for (let i = 0; i < count; i++) nodes.add(node, `vm-${(i * 7) % 11}`, { tier: i % 3 === 0 ? 'db' : 'web' }, i % 2 === 0 ? 'running' : 'shutoff');
    }
    nodes.domains.set('empty', new Map());
    const index = new FleetIndex(nodes);
    for (const node of nodes.domains.keys()) index.setNode(node, 'g1');
    expect(await index.whenSynced(5000)).toBe(true);
    const every = [...nodes.domains.values()]
      .flatMap((map) => [...map.values()])
      .map((d) => ({ node: d.node, uuid: d.uuid, name: d.name, driver: d.driver, state: d.state, reason: d.reason, labels: d.config.labels!, stateChangedAt: d.stateChangedAt }))
      .sort((a, b) => (a.node !== b.node ? (a.node < b.node ? -1 : 1) : a.name !== b.name ? (a.name < b.name ? -1 : 1) : a.uuid < b.uuid ? -1 : 1));
    const queries: FleetDomainListRequest[] = [{}, { limit: 1 }, { limit: 4 }, { limit: 7, state: 'running' }, { limit: 3, labelSelector: 'tier=db' }, { prefix: 'vm-1', limit: 2 }, { limit: 1000 }];
    for (const [query, visible, maxBytes] of [
      ...queries.map((query) => [query, everyone, BYTES] as const),
      [{ limit: 5 }, (node: string) => node !== 'n10', BYTES] as const,
      [{}, everyone, 1500] as const,
    ]) {
      const selector = query.labelSelector === 'tier=db' ? (d: FleetDomain) => d.labels?.['tier'] === 'db' : () => true;
      const matching = every.filter((d) => visible(d.node) && (query.state === undefined || d.state === query.state) && (query.prefix === undefined || d.name.startsWith(query.prefix)) && selector(d));
      let token: string | undefined;
      do {
        const page = index.page({ ...query, ...(token ? { continue: token } : {}) }, visible, maxBytes);
        const reference = takePage(matching, { keyOf: (d) => [d.node, d.name, d.uuid], view: (d) => d, query: { ...query, ...(token ? { continue: token } : {}) }, maxBytes });
        expect({ domains: page.domains, remaining: page.remaining, continue: page.continue }, JSON.stringify(query)).toEqual({
          domains: reference.items,
          remaining: reference.remaining,
          continue: reference.continue,
        });
        token = page.continue;
      } while (token);
    }
    expect(() => index.page({ continue: 'bm90LWEtdG9rZW4' }, everyone, BYTES)).toThrow(/invalid continue token/);
    index.close();
  });

  it('filters by a search over name, node and state and pages in another sort order, each token holding its order', async () => {
    const nodes = new Nodes();
    for (const node of ['a', 'b']) for (let i = 0; i < 7; i++) nodes.add(node, `vm-${(i * 5) % 7}`, {}, i % 3 === 0 ? 'running' : 'shutoff');
    nodes.add('web-node', 'Other');
    const index = new FleetIndex(nodes);
    for (const node of nodes.domains.keys()) index.setNode(node, 'g1');
    expect(await index.whenSynced(5000)).toBe(true);
    const every = allPages(index);
    const key = (d: FleetDomain, column: 'name' | 'state') => [d[column], d.node, d.name, d.uuid].join('\u0000');
    for (const [column, order] of [['name', 'asc'], ['name', 'desc'], ['state', 'desc'], ['state', 'asc']] as const) {
      const sign = order === 'desc' ? -1 : 1;
      const expected = [...every].sort((x, y) => sign * (key(x, column) < key(y, column) ? -1 : 1));
      expect(allPages(index, { sort: column, order, limit: 3 }).map((d) => d.uuid), `${column} ${order}`).toEqual(expected.map((d) => d.uuid));
    }
    expect(allPages(index, { order: 'desc', limit: 4 }).map((d) => d.uuid)).toEqual([...every].reverse().map((d) => d.uuid));
    // the search: any case, over name, node and state; it counts towards remaining like the other filters
    expect(allPages(index, { search: 'OTH' }).map((d) => d.name)).toEqual(['Other']);
    expect(allPages(index, { search: 'web-' }).map((d) => d.node)).toEqual(['web-node']);
    expect(allPages(index, { search: 'runn', sort: 'name', limit: 2 })).toHaveLength(6);
    expect(index.page({ search: 'vm-6', limit: 1 }, everyone, BYTES).remaining).toBe(1);
    const byName = index.page({ sort: 'name', limit: 1 }, everyone, BYTES).continue!;
    expect(() => index.page({ sort: 'state', continue: byName }, everyone, BYTES)).toThrow(/another sort order/);
    expect(() => index.page({ continue: byName }, everyone, BYTES)).toThrow(/another sort order/);
    index.close();
  });

  it('applies lifecycle events, drops repeats and learns the driver of a new domain', async () => {
    const { nodes, web, index } = await oneWebDomain();

    index.applyEvent(event(web, 10, 'STARTED', 'running'));
    expect(allPages(index)[0]).toMatchObject({ name: 'web', state: 'running' });
    index.applyEvent(event(web, 10, 'STOPPED', 'shutoff')); // a repeat of seq 10 (at-least-once delivery)
    expect(allPages(index)[0]!.state).toBe('running');

    const db = nodes.add('n1', 'db', { app: 'shop' });
    index.applyEvent(event(db, 11, 'DEFINED', 'shutoff'));
    await until(() => allPages(index).length === 2, 'the new domain to be listed with its driver');
    expect(allPages(index, { labelSelector: 'app=shop' })).toMatchObject([{ name: 'db', driver: 'test', labels: { app: 'shop' } }]);

    index.applyEvent(event(web, 12, 'UNDEFINED', 'shutoff'));
    expect(allPages(index).map((d) => d.name)).toEqual(['db']);
    expect(nodes.listCalls).toBe(1);
    index.close();
  });

  it('lists a node again on a sequence gap, a new agent generation or a resync, and drops a node that left', async () => {
    const { nodes, web, index } = await oneWebDomain();
    index.applyEvent(event(web, 1, 'STARTED', 'running'));

    // the index misses seq 2 (a domain defined behind its back); seq 3 reveals the gap
    nodes.add('n1', 'missed');
    index.applyEvent(event(web, 3, 'SUSPENDED', 'paused'));
    await until(() => allPages(index).length === 2, 'the resync after the gap');
    expect(nodes.listCalls).toBe(2);
    expect(index.staleNodes()).toEqual([]);

    index.setNode('n1', 'g1');
    expect(nodes.listCalls).toBe(2);
    index.setNode('n1', 'g2');
    await index.whenSynced(5000);
    expect(nodes.listCalls).toBe(3);

    index.removeNode('n1');
    expect(allPages(index)).toEqual([]);
    index.close();
  });

  it('replays events that arrive while a node is being listed, and reports a failing node stale with its last entries', async () => {
    const nodes = new Nodes();
    const web = nodes.add('n1', 'web');
    let open!: () => void;
    nodes.gate = new Promise((resolve) => (open = resolve));
    const index = new FleetIndex(nodes, { retryMs: 10, maxRetryMs: 20 });
    index.setNode('n1', 'g1');
    expect(index.page({}, everyone, BYTES).stale).toEqual(['n1']);
    index.applyEvent(event(web, 5, 'STARTED', 'running'));
    open();
    await index.whenSynced(5000);
    expect(allPages(index)[0]!.state).toBe('running');

    nodes.failing.add('n1');
    index.resync('n1');
    await until(() => nodes.listCalls >= 4, 'retries of the failing node');
    const page = index.page({}, everyone, BYTES);
    expect(page.stale).toEqual(['n1']);
    expect(page.domains.map((d) => d.name)).toEqual(['web']);
    nodes.failing.delete('n1');
    expect(await index.whenSynced(5000)).toBe(true);
    index.close();
  });
});

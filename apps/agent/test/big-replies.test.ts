import { join } from 'node:path';
import { Subjects, VirtError, type LifecycleEvent } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { type AgentProcess, allPages, spawnAgent, tearDown, useNatsBus, useTempDir } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// A small max_payload makes a few hundred domains a reply bigger than the server carries (1 MiB needs ~2,700).
const MAX_PAYLOAD = 64 * 1024;
const DOMAINS = 400;
const RUNNING = 300;

const bus = useNatsBus({ config: `max_payload: ${MAX_PAYLOAD}` });
let client: VirtClient;
const work = useTempDir('virtbus-big-replies-');
let agent: AgentProcess;
let exitCode: number | null | undefined;

beforeAll(async () => {
  client = new VirtClient(bus.nc);
  agent = await spawnAgent({ node: 'big', natsUrl: bus.server.url, stateDir: join(work.path, 'big') });
  void agent.exited.then((code) => (exitCode = code));
  const names = Array.from({ length: DOMAINS }, (_, index) => `vm-${String(index).padStart(4, '0')}`);
  for (let start = 0; start < names.length; start += 50) {
    await Promise.all(names.slice(start, start + 50).map((name) => client.call('big', 'domain.define', { name, driver: 'test', labels: { app: name.endsWith('0') ? 'web' : 'db' } })));
  }
  // running domains have stats: domain.stats.all then outgrows max_payload too
  for (let start = 0; start < RUNNING; start += 50) {
    await Promise.all(names.slice(start, start + 50).map((name) => client.call('big', 'domain.state', { id: name, change: { action: 'start' } })));
  }
}, 120_000);

afterAll(() => tearDown(agent));

async function stillServing(): Promise<void> {
  expect(exitCode, agent.output()).toBeUndefined();
  const info = await client.call('big', 'node.info', {});
  expect(info.node).toBe('big');
}

describe('replies bigger than the server max_payload', () => {
  it('a list without a limit answers the first page that fits, with a continue token, and the agent lives', async () => {
    const first = await client.call('big', 'domain.list', {});
    expect(first.domains.length).toBeGreaterThan(0);
    expect(first.domains.length).toBeLessThan(DOMAINS);
    expect(first.continue).toEqual(expect.any(String));
    expect(first.remaining).toBe(DOMAINS - first.domains.length);
    await stillServing();
  });

  it('pages through every domain exactly once, in name order', async () => {
    const pages = await allPages((token) => client.call('big', 'domain.list', { limit: 1000, ...(token ? { continue: token } : {}) }));
    const names = pages.flatMap((page) => page.domains.map((domain) => domain.name));
    expect(new Set(names).size).toBe(DOMAINS);
    expect(names).toEqual([...names].sort());
    await stillServing();
  });

  it('domain.stats.all pages too: every domain once, each page under max_payload', async () => {
    const pages = await allPages((token) => client.call('big', 'domain.stats.all', token ? { continue: token } : {}));
    for (const page of pages) expect(Buffer.byteLength(JSON.stringify({ result: page }))).toBeLessThanOrEqual(MAX_PAYLOAD);
    const names = pages.flatMap((page) => page.domains.map((stats) => stats.name));
    expect(pages.length).toBeGreaterThan(1);
    expect(names).toEqual([...new Set(names)].sort());
    expect(names).toHaveLength(DOMAINS);
    await stillServing();
  });

  it('filters by state, driver and name prefix on the agent', async () => {
    const pages = await allPages((token) => client.call('big', 'domain.list', { state: 'running', driver: 'test', ...(token ? { continue: token } : {}) }));
    const running = pages.flatMap((page) => page.domains.map((domain) => domain.name));
    expect(running).toHaveLength(RUNNING);
    const shutoff = await client.call('big', 'domain.list', { state: 'shutoff' });
    expect(shutoff.domains).toHaveLength(DOMAINS - RUNNING);
    expect((await client.call('big', 'domain.list', { driver: 'qemu' })).domains).toEqual([]);
    const prefixed = await client.call('big', 'domain.list', { prefix: 'vm-001' });
    expect(prefixed.domains.map((domain) => domain.name)).toEqual(Array.from({ length: 10 }, (_, index) => `vm-001${index}`));
  });

  it('rejects a bad selector or token with INVALID_ARG', async () => {
    for (const request of [{ labelSelector: 'app in (web' }, { continue: 'bm90LWEtdG9rZW4' }, { limit: 0 }, { limit: 1001 }]) {
      const error = await client.call('big', 'domain.list', request).then(
        () => undefined,
        (failure: unknown) => failure,
      );
      expect(VirtError.is(error, 'INVALID_ARG'), JSON.stringify(request)).toBe(true);
    }
    await stillServing();
  });

  it('replaces labels on update, lists by them at once and carries them in lifecycle events', async () => {
    const events: LifecycleEvent[] = [];
    const sub = bus.nc.subscribe(Subjects.allEvents, { callback: (_error, msg) => void events.push(msg.json<LifecycleEvent>()) });
    try {
      const updated = await client.call('big', 'domain.update', { id: 'vm-0001', config: { labels: { app: 'cache', 'example.com/owner': 'team-a' } } });
      expect(updated.config.labels).toEqual({ app: 'cache', 'example.com/owner': 'team-a' });
      expect((await client.call('big', 'domain.list', { labelSelector: 'app=cache,example.com/owner' })).domains.map((domain) => domain.name)).toEqual(['vm-0001']);
      await bus.nc.flush();
      // the 700 events of the set-up may still be on their way out of the outbox
      const deadline = Date.now() + 60_000;
      const isUpdate = (event: LifecycleEvent) => event.name === 'vm-0001' && event.type === 'DEFINED' && event.detail === 'UPDATED';
      while (!events.some(isUpdate) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(events.find(isUpdate)).toMatchObject({ labels: { app: 'cache', 'example.com/owner': 'team-a' } });
      const cleared = await client.call('big', 'domain.update', { id: 'vm-0001', config: { labels: {} } });
      expect(cleared.config.labels).toBeUndefined();
      const bad = await client.call('big', 'domain.update', { id: 'vm-0001', config: { labels: { '-bad': 'x' } } }).then(
        () => undefined,
        (failure: unknown) => failure,
      );
      expect(VirtError.is(bad, 'INVALID_ARG')).toBe(true);
    } finally {
      sub.unsubscribe();
    }
  }, 90_000);

  it('filters by label selector on the agent', async () => {
    const web = await client.call('big', 'domain.list', { labelSelector: 'app=web' });
    expect(web.domains).toHaveLength(DOMAINS / 10);
    expect(web.continue).toBeUndefined();
    expect(web.domains.every((domain) => domain.config.labels?.['app'] === 'web')).toBe(true);
  });
});

import type { Domain, DomainList, NodeInfo } from '@virtbus/api-contract';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allPages } from '@virtbus/testing';
import { startCliStack, type CliStack } from './support/stack.js';

// 20,000 by default (issue #13); VIRTBUS_SCALE_DOMAINS=3000 already needs more than one 1 MiB reply.
const COUNT = Number(process.env['VIRTBUS_SCALE_DOMAINS'] ?? 20_000);
const BATCH = 100;
const NODE = 'scale';
const name = (index: number) => `vm-${String(index).padStart(6, '0')}`;

let stack: CliStack;
let startedAt: string;

async function http<T>(path: string, init?: RequestInit): Promise<T> {
  const response = await fetch(new URL(path, stack.gatewayUrl), init);
  const body = (await response.json()) as T;
  if (!response.ok) throw new Error(`${init?.method ?? 'GET'} ${path}: ${response.status} ${JSON.stringify(body)}`);
  return body;
}

const define = (index: number) =>
  http<Domain>(`/v1/nodes/${NODE}/domains`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: name(index), driver: 'test', labels: { batch: String(index % 10), ...(index % 2 === 0 ? { even: '' } : {}) } }),
  });

async function sameAgent(): Promise<void> {
  const info = await http<NodeInfo>(`/v1/nodes/${NODE}`);
  expect(info.startedAt).toBe(startedAt);
}

beforeAll(async () => {
  stack = await startCliStack({ nodes: [NODE], defaultArgs: ['--node', NODE] });
  startedAt = (await http<NodeInfo>(`/v1/nodes/${NODE}`)).startedAt;
  for (let start = 0; start < COUNT; start += BATCH) {
    await Promise.all(Array.from({ length: Math.min(BATCH, COUNT - start) }, (_, offset) => define(start + offset)));
  }
}, 3_600_000);

afterAll(async () => {
  await stack?.close();
});

describe(`${COUNT} domains on one node`, () => {
  it('a list without limit answers at most one reply worth, and says how many remain', async () => {
    const first = await http<DomainList>(`/v1/nodes/${NODE}/domains`);
    expect(first.domains.length + (first.remaining ?? 0)).toBe(COUNT);
    expect(first.continue === undefined).toBe(first.remaining === 0);
    expect(Buffer.byteLength(JSON.stringify(first))).toBeLessThan(1024 * 1024);
    await sameAgent();
  });

  it('pages through every domain exactly once over HTTP, in name order', async () => {
    const pages = await allPages((token) => http<DomainList>(`/v1/nodes/${NODE}/domains?limit=1000${token ? `&continue=${token}` : ''}`));
    for (const page of pages) expect(page.domains.length).toBeLessThanOrEqual(1000);
    const names = pages.flatMap((page) => page.domains.map((domain) => domain.name));
    expect(names).toHaveLength(COUNT);
    expect(new Set(names).size).toBe(COUNT);
    expect(names).toEqual(Array.from({ length: COUNT }, (_, index) => name(index)));
    expect(pages.length).toBeGreaterThanOrEqual(Math.ceil(COUNT / 1000));
    await sameAgent();
  });

  it('filters by label selector, state and prefix over HTTP', async () => {
    const pages = await allPages((token) => http<DomainList>(`/v1/nodes/${NODE}/domains?labelSelector=${encodeURIComponent('batch in (3),!even')}${token ? `&continue=${token}` : ''}`));
    const three = pages.flatMap((page) => page.domains.map((domain) => domain.name));
    expect(three).toHaveLength(Array.from({ length: COUNT }, (_, index) => index).filter((index) => index % 10 === 3).length);
    expect((await http<DomainList>(`/v1/nodes/${NODE}/domains?state=running`)).domains).toEqual([]);
    expect((await http<DomainList>(`/v1/nodes/${NODE}/domains?prefix=${name(1).slice(0, -1)}&limit=5`)).domains.map((domain) => domain.name)).toEqual(
      [0, 1, 2, 3, 4].map(name),
    );
    const bad = await fetch(new URL(`/v1/nodes/${NODE}/domains?labelSelector=${encodeURIComponent('batch in (3')}`, stack.gatewayUrl));
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { code: string }).code).toBe('INVALID_ARG');
  });

  it('the CLI lists every domain across pages, bounds with --limit and filters with --selector', async () => {
    const all = await stack.cli('--json', 'list', '--all');
    expect(all.code).toBe(0);
    const names = (JSON.parse(all.text) as DomainList).domains.map((domain) => domain.name);
    expect(names).toHaveLength(COUNT);
    expect(new Set(names).size).toBe(COUNT);

    const bounded = JSON.parse((await stack.cli('--json', 'list', '--all', '--limit', '1500')).text) as DomainList;
    expect(bounded.domains.map((domain) => domain.name)).toEqual(Array.from({ length: Math.min(1500, COUNT) }, (_, index) => name(index)));

    const selected = JSON.parse((await stack.cli('--json', 'list', '--all', '--selector', 'batch=7')).text) as DomainList;
    expect(selected.domains.every((domain) => domain.config.labels?.['batch'] === '7')).toBe(true);
    expect(selected.domains).toHaveLength(Array.from({ length: COUNT }, (_, index) => index).filter((index) => index % 10 === 7).length);
    await sameAgent();
  });
});

import { describe, expect, it } from 'vitest';
import { VirtError } from './errors.js';
import { compareKeys, decodeContinueToken, encodeContinueToken, takePage, utf8Length } from './paging.js';

interface Item {
  name: string;
  uuid: string;
}
const keyOf = (item: Item) => [item.name, item.uuid];
const sorted = (items: Item[]) => [...items].sort((a, b) => compareKeys(keyOf(a), keyOf(b)));
const items = (count: number) => sorted(Array.from({ length: count }, (_, index) => ({ name: `vm-${String(index).padStart(3, '0')}`, uuid: `u-${index}` })));
const page = (list: Item[], query: { limit?: number; continue?: string }, maxBytes = 1_000_000) => takePage(list, { keyOf, view: (item) => item, query, maxBytes });

function all(list: () => Item[], limit: number): Item[] {
  const seen: Item[] = [];
  let token: string | undefined;
  do {
    const next = page(list(), { limit, ...(token ? { continue: token } : {}) });
    seen.push(...next.items);
    token = next.continue;
  } while (token);
  return seen;
}

describe('continue tokens', () => {
  it('round-trip any key, also non-ASCII', () => {
    for (const key of [['a'], ['vm-1', '5b1c'], ['ünï', 'ç/+=']]) {
      const token = encodeContinueToken(key);
      expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(decodeContinueToken(token)).toEqual(key);
    }
  });

  it('reject what is not a token of ours with INVALID_ARG', () => {
    for (const token of ['', 'abc', encodeContinueToken([]).slice(2), btoa('{"v":2,"after":["a"]}'), btoa('{"v":1,"after":[]}'), btoa('{"v":1,"after":[1]}')]) {
      expect(() => decodeContinueToken(token), token).toThrow(VirtError);
    }
  });

  it('compare keys by code units, then by length', () => {
    expect(compareKeys(['B'], ['a'])).toBeLessThan(0);
    expect(compareKeys(['a', 'x'], ['a', 'y'])).toBeLessThan(0);
    expect(compareKeys(['a'], ['a', ''])).toBeLessThan(0);
    expect(compareKeys(['a', 'b'], ['a', 'b'])).toBe(0);
  });
});

describe('takePage', () => {
  it('returns everything on one page without limit and no token on the last page', () => {
    const result = page(items(5), {});
    expect(result.items).toHaveLength(5);
    expect(result.continue).toBeUndefined();
    expect(result.remaining).toBe(0);
  });

  it('pages by limit with remaining counts', () => {
    const list = items(5);
    const first = page(list, { limit: 2 });
    expect(first.items.map((item) => item.name)).toEqual(['vm-000', 'vm-001']);
    expect(first.remaining).toBe(3);
    const second = page(list, { limit: 2, continue: first.continue! });
    expect(second.items.map((item) => item.name)).toEqual(['vm-002', 'vm-003']);
    const third = page(list, { limit: 2, continue: second.continue! });
    expect(third.items.map((item) => item.name)).toEqual(['vm-004']);
    expect(third.continue).toBeUndefined();
  });

  it('cuts a page before it would exceed the byte budget', () => {
    const list = items(100);
    const size = utf8Length(JSON.stringify(list[0])) + 1;
    const result = page(list, {}, size * 10 + 5);
    expect(result.items).toHaveLength(10);
    expect(result.continue).toBeDefined();
    expect(utf8Length(JSON.stringify(result.items))).toBeLessThanOrEqual(size * 10 + 5);
    expect(all(() => list, 1000)).toHaveLength(100);
  });

  it('answers REPLY_TOO_LARGE when not even one item fits', () => {
    expect(() => page(items(3), {}, 10)).toThrow(expect.objectContaining({ code: 'REPLY_TOO_LARGE' }));
  });

  it('sees every item that stayed exactly once while others come and go between pages', () => {
    let list = items(50);
    const stayed = new Set(list.filter((_, index) => index % 3 !== 0).map((item) => item.name));
    const seen: string[] = [];
    let token: string | undefined;
    let round = 0;
    do {
      const next = page(list, { limit: 7, ...(token ? { continue: token } : {}) });
      seen.push(...next.items.map((item) => item.name));
      token = next.continue;
      // between pages: drop a not-staying item, add a new one before and after the cursor
      round++;
      list = sorted([...list.filter((item) => stayed.has(item.name) || Number(item.name.slice(3)) % 3 !== 0 || Number(item.name.slice(3)) > round * 3), { name: `new-${round}`, uuid: 'n' }, { name: `zz-${round}`, uuid: 'z' }]);
    } while (token);
    expect(new Set(seen).size).toBe(seen.length);
    for (const name of stayed) expect(seen).toContain(name);
  });

  it('continues after a token whose item is gone', () => {
    const list = items(5);
    const token = encodeContinueToken(['vm-002', 'u-2']);
    const rest = page(list.filter((item) => item.name !== 'vm-002'), { continue: token });
    expect(rest.items.map((item) => item.name)).toEqual(['vm-003', 'vm-004']);
  });
});

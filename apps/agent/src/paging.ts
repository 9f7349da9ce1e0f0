import { PAGE_ENVELOPE_BYTES, compareKeys, takePage, type Page, type PageQuery } from '@virtbus/api-contract';
import type { CallContext } from './service.js';

/** The bytes a page's items may take so that the whole reply stays under the bus max_payload. */
export function pageBudget(context: CallContext): number {
  return context.maxReplyBytes - PAGE_ENVELOPE_BYTES;
}

/** `continue` (on all but the last page) and `remaining` of a reply. */
export function pageFields(page: Page<unknown>): { continue?: string; remaining: number } {
  return { ...(page.continue ? { continue: page.continue } : {}), remaining: page.remaining };
}

/** A page of items keyed by `key` (sorted here), e.g. [name] or [createdAt, id]; `otherBytes` is what the rest of the reply takes. */
export function pageOf<T>(items: readonly T[], key: (item: T) => readonly string[], query: PageQuery, context: CallContext, otherBytes = 0): Page<T> {
  const sorted = [...items].sort((a, b) => compareKeys(key(a), key(b)));
  return takePage(sorted, { keyOf: key, view: (item) => item, query, maxBytes: pageBudget(context) - otherBytes });
}

/** A page of named items, filtered by name prefix. */
export function pageByName<T extends { name: string }>(
  items: readonly T[],
  query: PageQuery & { prefix?: string | undefined },
  context: CallContext,
  otherBytes = 0,
): Page<T> {
  const { prefix } = query;
  return pageOf(prefix ? items.filter((item) => item.name.startsWith(prefix)) : items, (item) => [item.name], query, context, otherBytes);
}

/** A list reply of named items (`{ networks: [...], continue, remaining }`): one page of them under `key`. */
export function namedListPage<K extends string, T extends { name: string }>(
  key: K,
  items: readonly T[],
  query: PageQuery & { prefix?: string | undefined },
  context: CallContext,
): Record<K, T[]> & { continue?: string; remaining: number } {
  const page = pageByName(items, query, context);
  return { [key]: page.items, ...pageFields(page) } as Record<K, T[]> & { continue?: string; remaining: number };
}

import Type, { type TSchema } from 'typebox';
import { VirtError } from './errors.js';
import { PermissionClass, type HttpBinding } from './operation-spec.js';
import { Access } from './subjects.js';

export const MAX_PAGE_LIMIT = 1000;
/** Bytes of a reply kept free for the envelope, `continue` and `remaining` around a page of items. */
export const PAGE_ENVELOPE_BYTES = 4096;

export const PageLimit = Type.Integer({ minimum: 1, maximum: MAX_PAGE_LIMIT, description: 'At most this many items in the reply (a page may hold fewer to stay under the bus payload limit)' });
export const ContinueToken = Type.String({
  minLength: 1,
  maxLength: 1024,
  pattern: '^[A-Za-z0-9_-]+$',
  description: 'Opaque token from the previous page: the list resumes after the last item it returned',
});

/** Request fields of every paged list; without `limit` a list returns every item that fits in one reply. */
export const PageRequestFields = {
  limit: Type.Optional(PageLimit),
  continue: Type.Optional(ContinueToken),
};

/** Request fields of lists keyed by name: paging plus a name prefix filter. */
export const NamePageRequestFields = {
  ...PageRequestFields,
  prefix: Type.Optional(Type.String({ maxLength: 64, description: 'Only names starting with this' })),
};

/** The verb listing one kind of named object a page at a time: read-only, GET with the page and prefix in the query. */
export function namedListOperation<const R extends TSchema>(requestTitle: string, response: R, summary: string, http: Pick<HttpBinding, 'path' | 'operationId' | 'tag'>) {
  return {
    access: Access.ReadOnly,
    request: Type.Object(NamePageRequestFields, { additionalProperties: false, title: requestTitle }),
    response,
    summary,
    permission: PermissionClass.Read,
    http: { method: 'GET', ...http, query: true },
  } as const;
}

/** Response fields of every paged list: `continue` is absent on the last page. */
export const PageResponseFields = {
  continue: Type.Optional(ContinueToken),
  remaining: Type.Optional(Type.Integer({ minimum: 0, description: 'Matching items after this page (as of this call)' })),
};

export interface PageQuery {
  limit?: number | undefined;
  continue?: string | undefined;
}

export interface Page<T> {
  items: T[];
  continue?: string;
  remaining: number;
}

/** Orders list keys (name, then uuid, …) by UTF-16 code units: the same order on every node and in every token. */
export function compareKeys(a: readonly string[], b: readonly string[]): number {
  for (let index = 0; index < Math.min(a.length, b.length); index++) {
    if (a[index]! < b[index]!) return -1;
    if (a[index]! > b[index]!) return 1;
  }
  return a.length - b.length;
}

function base64url(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

function fromBase64url(token: string): string {
  const binary = atob(token.replaceAll('-', '+').replaceAll('_', '/'));
  return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(binary, (char) => char.charCodeAt(0)));
}

/** A continue token naming the last key a page returned. */
export function encodeContinueToken(key: readonly string[]): string {
  return base64url(JSON.stringify({ v: 1, after: key }));
}

/** The last key of the previous page; a token that is not one of ours is INVALID_ARG. */
export function decodeContinueToken(token: string): string[] {
  try {
    const parsed = JSON.parse(fromBase64url(token)) as { v?: unknown; after?: unknown };
    if (parsed.v === 1 && Array.isArray(parsed.after) && parsed.after.length > 0 && parsed.after.every((part) => typeof part === 'string')) return parsed.after as string[];
  } catch (error) {
    throw new VirtError('INVALID_ARG', 'invalid continue token', { cause: error });
  }
  throw new VirtError('INVALID_ARG', 'invalid continue token');
}

/** UTF-8 length of a string without encoding it. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff) {
      bytes += 4;
      index++;
    } else bytes += 3;
  }
  return bytes;
}

export interface TakePageOptions<S, T> {
  /** The stable key of an item (e.g. [name, uuid]); items must already be sorted by it with compareKeys. */
  keyOf: (item: S) => readonly string[];
  /** What the reply carries for an item (only computed for items on the page). */
  view: (item: S) => T;
  query: PageQuery;
  /** Bytes the page's items may take in JSON (the reply bound minus PAGE_ENVELOPE_BYTES). */
  maxBytes: number;
  /** Bytes an item takes in the reply (default: its JSON's UTF-8 length); views that are already serialized know it. */
  sizeOf?: (item: T) => number;
}

/**
 * One page of a sorted list: the items after the token's key, up to `limit` and as many as fit in `maxBytes`.
 * Keys are immutable, so paging while items come and go never repeats an item nor skips one that stayed.
 */
export function takePage<S, T>(sorted: readonly S[], options: TakePageOptions<S, T>): Page<T> {
  const { keyOf, view, query, maxBytes } = options;
  const sizeOf = options.sizeOf ?? ((item: T) => utf8Length(JSON.stringify(item)));
  let start = 0;
  if (query.continue !== undefined) {
    const after = decodeContinueToken(query.continue);
    let high = sorted.length;
    while (start < high) {
      const middle = (start + high) >>> 1;
      if (compareKeys(keyOf(sorted[middle]!), after) <= 0) start = middle + 1;
      else high = middle;
    }
  }
  const limit = query.limit ?? Number.POSITIVE_INFINITY;
  const items: T[] = [];
  let bytes = 0;
  let end = start;
  while (end < sorted.length && items.length < limit) {
    const item = view(sorted[end]!);
    const size = sizeOf(item) + 1;
    if (bytes + size > maxBytes) {
      if (items.length === 0) throw new VirtError('REPLY_TOO_LARGE', `one item of this list is larger than a reply may be (${maxBytes} bytes)`);
      break;
    }
    bytes += size;
    items.push(item);
    end++;
  }
  const remaining = sorted.length - end;
  return remaining > 0 && items.length > 0 ? { items, continue: encodeContinueToken(keyOf(sorted[end - 1]!)), remaining } : { items, remaining };
}

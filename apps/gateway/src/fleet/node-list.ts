import { takePage, type PageQuery } from '@virtbus/api-contract';
import type { NodeRegistryCache, RegisteredNode } from '@virtbus/client';

/** A node's summary serialized both ways (online or not is decided per call), for the entry it was made from. */
interface Serialized {
  entry: RegisteredNode;
  online: Buffer;
  offline: Buffer;
}

const COMMA = Buffer.from(',');
const OPEN = Buffer.from('{"nodes":[');

/**
 * GET /v1/nodes as bytes: each node's summary stays serialized until its registry entry changes (entries are
 * replaced, never edited, on a heartbeat), so a call at 1,000 nodes joins buffers instead of serializing records.
 */
export class NodeListJson {
  private readonly serialized = new Map<string, Serialized>();

  constructor(private readonly registry: Pick<NodeRegistryCache, 'names' | 'get' | 'summary' | 'isOnline' | 'onlineWithinSeconds'>) {}

  /** One page of the nodes `visible` lets through, as the NodeList JSON the route declares. */
  page(query: PageQuery, visible: (node: string) => boolean, maxBytes: number, now = Date.now()): Buffer {
    const names = this.registry.names();
    const shown = names.filter(visible);
    const page = takePage(shown, {
      keyOf: (node) => [node],
      view: (node) => this.bytesOf(node, now),
      sizeOf: (bytes) => bytes.length,
      query,
      maxBytes,
    });
    if (this.serialized.size > names.length) this.forgetGone(names);
    const parts: Buffer[] = [OPEN];
    page.items.forEach((bytes, index) => {
      if (index > 0) parts.push(COMMA);
      parts.push(bytes);
    });
    const tail = JSON.stringify({ ...(page.continue ? { continue: page.continue, remaining: page.remaining } : {}), onlineWithinSeconds: this.registry.onlineWithinSeconds });
    parts.push(Buffer.from(`],${tail.slice(1)}`));
    return Buffer.concat(parts);
  }

  private bytesOf(node: string, now: number): Buffer {
    const entry = this.registry.get(node)!;
    let cached = this.serialized.get(node);
    if (cached?.entry !== entry) {
      cached = {
        entry,
        online: Buffer.from(JSON.stringify(this.registry.summary(node, entry, now, true))),
        offline: Buffer.from(JSON.stringify(this.registry.summary(node, entry, now, false))),
      };
      this.serialized.set(node, cached);
    }
    return this.registry.isOnline(entry, now) ? cached.online : cached.offline;
  }

  private forgetGone(names: readonly string[]): void {
    const current = new Set(names);
    for (const node of this.serialized.keys()) if (!current.has(node)) this.serialized.delete(node);
  }
}

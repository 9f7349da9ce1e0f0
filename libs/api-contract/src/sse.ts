import Type, { type Static } from 'typebox';
import { DomainEvent } from './domain-events.js';
import { ErrorBody } from './errors.js';
import { LifecycleEvent } from './events.js';
import { GraphicsEvent } from './graphics.js';
import { NetworkEvent } from './network.js';
import { DomainSnapshotEvent } from './snapshots.js';
import { OperationEvent, StoragePoolEvent } from './storage.js';

/**
 * What GET /v1/events sends for each `?kind=`: the SSE `event:` name and its `data:` payload. The names are v1's: domain
 * events are `lifecycle` while the others carry their `kind` (`pool.lifecycle`…); a v2 would name them alike (CHANGELOG).
 */
export const SseEventFamilies = {
  domain: { event: 'lifecycle', payload: LifecycleEvent },
  pool: { event: 'pool.lifecycle', payload: StoragePoolEvent },
  network: { event: 'network.lifecycle', payload: NetworkEvent },
  snapshot: { event: 'snapshot.lifecycle', payload: DomainSnapshotEvent },
  operation: { event: 'operation', payload: OperationEvent },
  graphics: { event: 'graphics', payload: GraphicsEvent },
  domainevent: { event: 'domain.event', payload: DomainEvent },
} as const;
export type SseEventKind = keyof typeof SseEventFamilies;

/** The last message of a stream whose consumer could not be resumed: the error and the id to resume after. */
export const SseErrorEvent = Type.Object(
  { ...ErrorBody.properties, resumeAfter: Type.Integer({ minimum: 0, description: 'Resume after this id (since or Last-Event-ID)' }) },
  { additionalProperties: false, title: 'SseErrorEvent' },
);
export type SseErrorEvent = Static<typeof SseErrorEvent>;
export const SSE_ERROR_EVENT = 'error';

/** One message of a text/event-stream as sent: its fields (the last of each name) and its comment lines. */
export interface SseMessage {
  readonly id?: string;
  readonly event?: string;
  readonly data?: string;
  readonly comments: readonly string[];
}

/** The messages of an event stream's body, in order, as each blank-line-ended block completes (chunks may split them anywhere, UTF-8 included). */
export async function* sseMessages(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of chunks) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const fields: Record<string, string> = {};
      const comments: string[] = [];
      for (const line of block.split('\n')) {
        const colon = line.indexOf(':');
        if (colon === 0) comments.push(line.slice(1).trim());
        else if (colon < 0) fields[line] = '';
        else fields[line.slice(0, colon)] = line.slice(colon + 1).replace(/^ /, '');
      }
      yield { id: fields['id'], event: fields['event'], data: fields['data'], comments };
    }
  }
}

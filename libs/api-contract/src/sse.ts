import Type, { type Static } from 'typebox';
import { ErrorBody } from './errors.js';
import { LifecycleEvent } from './events.js';
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
} as const;
export type SseEventKind = keyof typeof SseEventFamilies;

/** The last message of a stream whose consumer could not be resumed: the error and the id to resume after. */
export const SseErrorEvent = Type.Object(
  { ...ErrorBody.properties, resumeAfter: Type.Integer({ minimum: 0, description: 'Resume after this id (since or Last-Event-ID)' }) },
  { additionalProperties: false, title: 'SseErrorEvent' },
);
export type SseErrorEvent = Static<typeof SseErrorEvent>;
export const SSE_ERROR_EVENT = 'error';

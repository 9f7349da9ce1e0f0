import Type, { type Static, type TSchema } from 'typebox';
import { Domain, DomainList, DomainPut, DomainsPost, DomainStatePut } from './domain.js';
import { DomainId } from './names.js';
import { ErrorBody } from './errors.js';
import { NodeInfo } from './node.js';
import { Access } from './subjects.js';

export const Empty = Type.Object({}, { additionalProperties: false, title: 'Empty' });
export const DomainRef = Type.Object({ id: DomainId }, { additionalProperties: false, title: 'DomainRef' });
export const DomainUpdateRequest = Type.Object({ id: DomainId, config: DomainPut }, { additionalProperties: false });
export const DomainStateRequest = Type.Object({ id: DomainId, change: DomainStatePut }, { additionalProperties: false });

export interface OperationSpec {
  readonly access: Access;
  readonly request: TSchema;
  readonly response: TSchema;
  readonly summary: string;
}

/** The agent's request/reply API: operation name → subject access, request and response schemas. */
export const Operations = {
  'node.info': { access: Access.ReadOnly, request: Empty, response: NodeInfo, summary: 'Node hardware, memory, NUMA and drivers' },
  'domain.list': { access: Access.ReadOnly, request: Empty, response: DomainList, summary: 'All domains of the node' },
  'domain.get': { access: Access.ReadOnly, request: DomainRef, response: Domain, summary: 'One domain by uuid or name' },
  'domain.define': { access: Access.ReadWrite, request: DomainsPost, response: Domain, summary: 'Define a persistent domain' },
  'domain.update': { access: Access.ReadWrite, request: DomainUpdateRequest, response: Domain, summary: "Replace parts of a domain's config" },
  'domain.undefine': { access: Access.ReadWrite, request: DomainRef, response: Domain, summary: 'Remove a shut-off domain' },
  'domain.state': { access: Access.ReadWrite, request: DomainStateRequest, response: Domain, summary: 'Change the run state' },
} as const satisfies Record<string, OperationSpec>;

export type OperationName = keyof typeof Operations;
export const OperationNames = Object.keys(Operations) as OperationName[];
export type OperationRequest<N extends OperationName> = Static<(typeof Operations)[N]['request']>;
export type OperationResponse<N extends OperationName> = Static<(typeof Operations)[N]['response']>;

/** Every agent reply is one of these two JSON bodies. */
export const ReplyEnvelope = Type.Union([
  Type.Object({ result: Type.Unknown() }, { additionalProperties: false }),
  Type.Object({ error: ErrorBody }, { additionalProperties: false }),
]);
export type ReplyEnvelope = { result: unknown } | { error: ErrorBody };

/** NATS message headers the agent reads: W3C trace context and the caller's identity. */
export const Headers = {
  TraceParent: 'traceparent',
  TraceState: 'tracestate',
  Identity: 'virtbus-identity',
} as const;

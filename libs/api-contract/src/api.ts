import Type, { type Static, type TSchema } from 'typebox';
import { Domain, DomainList, DomainListRequest, DomainPut, DomainsPost, DomainStatePut, ExecRequest, ExecResult } from './domain.js';
import { DomainStats, DomainStatsList, NodeStats } from './stats.js';
import { DomainId } from './names.js';
import { ErrorBody } from './errors.js';
import { NodeInfo } from './node.js';
import { Access } from './subjects.js';
import { AsyncOperation, StorageOperations } from './storage.js';
import { NetworkOperations } from './network.js';
import { HostInterfaceOperations } from './interfaces.js';
import { DomainMigrateRequest } from './migration.js';
import { SnapshotOperations } from './snapshots.js';
import { DeviceOperations } from './devices.js';
import { ProvisionOperations } from './provision.js';
import { FirewallOperations } from './firewall.js';

export const Empty = Type.Object({}, { additionalProperties: false, title: 'Empty' });
export const DomainRef = Type.Object({ id: DomainId }, { additionalProperties: false, title: 'DomainRef' });
export const DomainUpdateRequest = Type.Object({ id: DomainId, config: DomainPut }, { additionalProperties: false });
export const DomainStateRequest = Type.Object({ id: DomainId, change: DomainStatePut }, { additionalProperties: false });

export const DomainExecRequest = Type.Object({ id: DomainId, exec: ExecRequest }, { additionalProperties: false });

const Base64 = Type.String({ pattern: '^[A-Za-z0-9+/]*={0,2}$', description: 'base64 bytes' });
export const ConsoleAttachRequest = Type.Object(
  { id: DomainId, force: Type.Optional(Type.Boolean({ description: 'Take the console from the current writer' })) },
  { additionalProperties: false },
);
export const ConsoleAttachment = Type.Object(
  {
    session: Type.String({ description: 'Writer session; empty for read-only viewers' }),
    history: Base64,
    subject: Type.String({ description: 'Core NATS subject carrying live console output as raw bytes' }),
  },
  { additionalProperties: false, title: 'ConsoleAttachment' },
);
export const ConsoleWriteRequest = Type.Object(
  { id: DomainId, session: Type.String({ minLength: 1, maxLength: 64 }), data: Type.String({ ...Base64, maxLength: 87_384 }) },
  { additionalProperties: false },
);
export const ConsoleDetachRequest = Type.Object({ id: DomainId, session: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false });

export interface OperationSpec {
  readonly access: Access;
  readonly request: TSchema;
  readonly response: TSchema;
  readonly summary: string;
}

/** The agent's request/reply API: operation name → subject access, request and response schemas. */
export const Operations = {
  'node.info': { access: Access.ReadOnly, request: Empty, response: NodeInfo, summary: 'Node hardware, memory, NUMA and drivers' },
  'node.stats': { access: Access.ReadOnly, request: Empty, response: NodeStats, summary: 'Host CPU seconds by mode, memory and NUMA free memory' },
  'domain.list': {
    access: Access.ReadOnly,
    request: DomainListRequest,
    response: DomainList,
    summary: 'Domains of the node in (name, uuid) order: filtered, paged with limit/continue, never more than one reply holds',
  },
  'domain.get': { access: Access.ReadOnly, request: DomainRef, response: Domain, summary: 'One domain by uuid or name' },
  'domain.define': { access: Access.ReadWrite, request: DomainsPost, response: Domain, summary: 'Define a persistent domain' },
  'domain.update': { access: Access.ReadWrite, request: DomainUpdateRequest, response: Domain, summary: "Replace parts of a domain's config" },
  'domain.undefine': { access: Access.ReadWrite, request: DomainRef, response: Domain, summary: 'Remove a shut-off domain' },
  'domain.state': { access: Access.ReadWrite, request: DomainStateRequest, response: Domain, summary: 'Change the run state' },
  'domain.stats': { access: Access.ReadOnly, request: DomainRef, response: DomainStats, summary: 'Host-side stats of one domain' },
  'domain.stats.all': {
    access: Access.ReadOnly,
    request: Empty,
    response: DomainStatsList,
    summary: 'Stats of every domain, each bounded by a deadline (timedOut marks the late ones)',
  },
  'domain.exec': { access: Access.ReadWrite, request: DomainExecRequest, response: ExecResult, summary: 'Run a command inside a running domain' },
  'domain.console.read': { access: Access.ReadOnly, request: DomainRef, response: ConsoleAttachment, summary: 'Console output so far and the live subject' },
  'domain.console.attach': { access: Access.ReadWrite, request: ConsoleAttachRequest, response: ConsoleAttachment, summary: 'Become the console writer' },
  'domain.console.write': { access: Access.ReadWrite, request: ConsoleWriteRequest, response: Empty, summary: 'Send keystrokes to the console' },
  'domain.console.detach': { access: Access.ReadWrite, request: ConsoleDetachRequest, response: Empty, summary: 'Give up the console writer session' },
  'domain.migrate': {
    access: Access.ReadWrite,
    request: DomainMigrateRequest,
    response: AsyncOperation,
    summary: 'Migrate a domain to another node (async operation with progress and cancel)',
  },
  ...StorageOperations,
  ...NetworkOperations,
  ...HostInterfaceOperations,
  ...SnapshotOperations,
  ...DeviceOperations,
  ...ProvisionOperations,
  ...FirewallOperations,
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

import Type, { type Static } from 'typebox';
import { DEFAULT_STATE_TIMEOUT_S, Domain, DomainList, DomainListRequest, DomainPut, DomainsPost, DomainStatePut, DomainImport, DomainImportResult, DomainXml, ExecRequest, ExecResult } from './domain.js';
import { DomainStats, DomainStatsList, DomainStatsListRequest, NodeStats } from './stats.js';
import { DomainId } from './names.js';
import { ErrorBody } from './errors.js';
import { NodeInfo } from './node.js';
import { Access } from './subjects.js';
import { HttpTags, ObjectErrors, PermissionClass, type OperationSpec } from './operation-spec.js';
import { AsyncOperation, StorageOperations } from './storage.js';
import { NetworkOperations } from './network.js';
import { HostInterfaceOperations } from './interfaces.js';
import { DomainMigrateRequest, MigrationAcceptRequest, MigrationTicket, PeerMigrationOperations } from './migration.js';
import { SnapshotOperations } from './snapshots.js';
import { DeviceOperations } from './devices.js';
import { ResourceOperations } from './resources.js';
import { ProvisionOperations } from './provision.js';
import { FirewallOperations } from './firewall.js';
import { GraphicsOperations } from './graphics.js';
import { GuestAgentOperations } from './guest-agent.js';
import { HypervisorOperations } from './hypervisor.js';
import { CapabilityOperations } from './capabilities.js';
import { BlockJobOperations } from './block-jobs.js';

export const Empty = Type.Object({}, { additionalProperties: false, title: 'Empty' });
export const DomainRef = Type.Object({ id: DomainId }, { additionalProperties: false, title: 'DomainRef' });
export const DomainUpdateRequest = Type.Object({ id: DomainId, config: DomainPut }, { additionalProperties: false });
export const DomainUndefineRequest = Type.Object(
  { id: DomainId, keepNvram: Type.Optional(Type.Boolean({ description: "Keep an efi domain's NVRAM file on the node (libvirt --keep-nvram)" })) },
  { additionalProperties: false },
);
export const DomainStateRequest = Type.Object({ id: DomainId, change: DomainStatePut }, { additionalProperties: false });

/** virsh domstate --reason: the run state alone, without the definition. */
export const DomainStateInfo = Type.Object(
  { uuid: Domain.properties.uuid, name: Domain.properties.name, state: Domain.properties.state, reason: Domain.properties.reason, stateChangedAt: Domain.properties.stateChangedAt },
  { additionalProperties: false, title: 'DomainStateInfo' },
);

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

/** The agent's request/reply API: operation name → subject access, request and response schemas. */
export const Operations = {
  'node.info': {
    access: Access.ReadOnly,
    request: Empty,
    response: NodeInfo,
    summary: 'Node hardware, memory, NUMA cells and drivers',
    permission: PermissionClass.Read,
    http: { method: 'GET', path: '', operationId: 'getNode', tag: HttpTags.Nodes },
  },
  'node.stats': {
    access: Access.ReadOnly,
    request: Empty,
    response: NodeStats,
    summary: 'Host CPU seconds by mode, memory and free memory per NUMA cell',
    permission: PermissionClass.Read,
    http: { method: 'GET', path: '/stats', operationId: 'getNodeStats', tag: HttpTags.Nodes },
  },
  'domain.list': {
    access: Access.ReadOnly,
    request: DomainListRequest,
    response: DomainList,
    summary: 'Domains of the node in (name, uuid) order',
    permission: PermissionClass.Read,
    http: { method: 'GET', path: '/domains', operationId: 'listDomains', tag: HttpTags.Domains, description: 'Filtered by `state`, `driver`, name `prefix` and a Kubernetes `labelSelector`; paged with `limit` and the `continue` token of the previous page (absent on the last page). Without `limit` every domain is returned unless that would exceed one bus reply; then the first page that fits comes with `continue`.', query: true },
  },
  'domain.get': {
    access: Access.ReadOnly,
    request: DomainRef,
    response: Domain,
    summary: 'One domain by uuid or name',
    permission: PermissionClass.Read,
    errors: ['NO_DOMAIN'],
    http: { method: 'GET', path: '/domains/:id', operationId: 'getDomain', tag: HttpTags.Domains },
  },
  'domain.define': {
    access: Access.ReadWrite,
    request: DomainsPost,
    response: Domain,
    summary: 'Define a persistent domain',
    permission: PermissionClass.Define,
    errors: ['DOMAIN_EXISTS', 'PAYLOAD_TOO_LARGE', 'OPERATION_UNSUPPORTED'],
    http: { method: 'POST', path: '/domains', operationId: 'defineDomain', tag: HttpTags.Domains, status: 201, body: true },
  },
  'domain.update': {
    access: Access.ReadWrite,
    request: DomainUpdateRequest,
    response: Domain,
    summary: "Replace parts of a domain's config; they apply at next start",
    permission: PermissionClass.Define,
    errors: ['NO_DOMAIN', 'OPERATION_INVALID', 'PAYLOAD_TOO_LARGE', 'OPERATION_UNSUPPORTED'],
    http: { method: 'PUT', path: '/domains/:id', operationId: 'updateDomain', tag: HttpTags.Domains, body: 'config' },
  },
  'domain.undefine': {
    access: Access.ReadWrite,
    request: DomainUndefineRequest,
    response: Domain,
    summary: 'Remove a shut-off domain; returns it as it was',
    permission: PermissionClass.Define,
    errors: ObjectErrors.domain,
    http: { method: 'DELETE', path: '/domains/:id', operationId: 'undefineDomain', tag: HttpTags.Domains, query: true },
  },
  'domain.state': {
    access: Access.ReadWrite,
    request: DomainStateRequest,
    response: Domain,
    summary: 'Start, shut down, destroy, reboot, reset, suspend or resume',
    permission: PermissionClass.Lifecycle,
    errors: ['NO_DOMAIN', 'OPERATION_INVALID', 'PAYLOAD_TOO_LARGE', 'OPERATION_UNSUPPORTED', 'STORAGE_FULL'],
    http: { method: 'PUT', path: '/domains/:id/state', operationId: 'changeDomainState', tag: HttpTags.Domains, body: 'change' },
    wait: { seconds: DEFAULT_STATE_TIMEOUT_S, field: 'change.timeout', marginSeconds: 5 },
  },
  'domain.state.get': {
    access: Access.ReadOnly,
    request: DomainRef,
    response: DomainStateInfo,
    summary: 'The run state of a domain and why it is in it (virsh domstate --reason)',
    permission: PermissionClass.Read,
    errors: ['NO_DOMAIN'],
    http: { method: 'GET', path: '/domains/:id/state', operationId: 'getDomainState', tag: HttpTags.Domains },
  },
  // driver libvirt: libvirt's own definition, read-only
  'domain.xml': {
    access: Access.ReadOnly, request: DomainRef, response: DomainXml, permission: PermissionClass.Read, errors: ['NO_DOMAIN', 'OPERATION_UNSUPPORTED'], drivers: ['libvirt'],
    summary: 'The domain XML libvirt holds for a domain of driver libvirt (read-only; other drivers answer OPERATION_UNSUPPORTED)',
    http: { method: 'GET', path: '/domains/:id/xml', operationId: 'getDomainXml', tag: HttpTags.Domains },
  },
  'domain.import': {
    access: Access.ReadWrite, request: DomainImport, response: DomainImportResult, permission: PermissionClass.Define, errors: ['NO_DOMAIN', 'DOMAIN_EXISTS', 'OPERATION_UNSUPPORTED'], drivers: ['libvirt'],
    summary: "Adopt domains the node's libvirtd already has (driver libvirt); running ones keep running, libvirt's XML stays their definition",
    http: { method: 'POST', path: '/domains/import', operationId: 'importDomains', tag: HttpTags.Domains, body: true },
  },
  'domain.stats': {
    access: Access.ReadOnly,
    request: DomainRef,
    response: DomainStats,
    summary: 'Host-side stats of one domain (libvirt stats groups)',
    permission: PermissionClass.Read,
    errors: ObjectErrors.domain,
    http: { method: 'GET', path: '/domains/:id/stats', operationId: 'getDomainStats', tag: HttpTags.Domains },
  },
  'domain.stats.all': {
    access: Access.ReadOnly,
    request: DomainStatsListRequest,
    response: DomainStatsList,
    summary: 'Stats of every domain of the node in (name, uuid) order (paged with limit/continue); a domain that misses the deadline is marked timedOut',
    permission: PermissionClass.Read,
    http: { method: 'GET', path: '/stats/domains', operationId: 'getAllDomainStats', tag: HttpTags.Nodes, query: true },
  },
  // a guest command is as powerful as a console login
  'domain.exec': {
    access: Access.ReadWrite,
    request: DomainExecRequest,
    response: ExecResult,
    summary: 'Run a command inside a running domain and wait for it',
    permission: PermissionClass.Console,
    errors: ['NO_DOMAIN', 'OPERATION_INVALID', 'PAYLOAD_TOO_LARGE', 'OPERATION_UNSUPPORTED'],
    http: { method: 'POST', path: '/domains/:id/exec', operationId: 'execInDomain', tag: HttpTags.Domains, body: 'exec' },
    wait: { seconds: 60, field: 'exec.timeout', marginSeconds: 5 },
  },
  'domain.console.read': {
    access: Access.ReadOnly,
    request: DomainRef,
    response: ConsoleAttachment,
    summary: 'Console output so far and the live subject',
    permission: PermissionClass.Console,
  },
  'domain.console.attach': {
    access: Access.ReadWrite,
    request: ConsoleAttachRequest,
    response: ConsoleAttachment,
    summary: 'Become the console writer',
    permission: PermissionClass.Console,
  },
  'domain.console.write': {
    access: Access.ReadWrite,
    request: ConsoleWriteRequest,
    response: Empty,
    summary: 'Send keystrokes to the console',
    permission: PermissionClass.Console,
  },
  'domain.console.detach': {
    access: Access.ReadWrite,
    request: ConsoleDetachRequest,
    response: Empty,
    summary: 'Give up the console writer session',
    permission: PermissionClass.Console,
  },
  // moves a definition onto another node (and may remove it here)
  'domain.migrate': {
    access: Access.ReadWrite,
    request: DomainMigrateRequest,
    response: AsyncOperation,
    summary: 'Migrate a domain from this node to the destination node; returns the async operation (progress, cancel)',
    permission: PermissionClass.Define,
    errors: ['NO_DOMAIN', 'OPERATION_INVALID', 'MIGRATION_INCOMPATIBLE', 'DOMAIN_EXISTS', 'OPERATION_UNSUPPORTED'],
    // by hand: it asks the destination agent for a ticket first
    http: { method: 'POST', path: '/domains/:id/migrate', operationId: 'migrateDomain', tag: HttpTags.Domains, status: 202, body: 'migration', served: 'hand' },
    wait: { seconds: 30 },
  },
  // lets a migration define a domain on this node
  'migration.accept': {
    access: Access.ReadWrite,
    request: MigrationAcceptRequest,
    response: MigrationTicket,
    summary: 'On the destination: issue a one-time ticket that lets the source migrate this domain here (callers allowed on both nodes)',
    permission: PermissionClass.Define,
  },
  ...StorageOperations,
  ...NetworkOperations,
  ...HostInterfaceOperations,
  ...SnapshotOperations,
  ...DeviceOperations,
  ...ResourceOperations,
  ...GraphicsOperations,
  ...ProvisionOperations,
  ...FirewallOperations,
  ...GuestAgentOperations,
  ...PeerMigrationOperations,
  ...HypervisorOperations,
  ...CapabilityOperations,
  ...BlockJobOperations,
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

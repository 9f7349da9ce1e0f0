import type { TSchema } from 'typebox';
import type { DomainDriver } from './domain.js';
import type { ErrorCode } from './errors.js';
import type { Access } from './subjects.js';

/** What a caller does, grouped the way libvirt's ro/rw sockets and ACLs group it; roles map each class to a minimum role. */
export const PermissionClass = {
  Read: 'read',
  Events: 'events',
  Lifecycle: 'lifecycle',
  Console: 'console',
  Define: 'define',
  Storage: 'storage',
  Network: 'network',
  HostInterface: 'host-interface',
  Audit: 'audit',
  /** Agent-to-agent verbs (access peer): no user role has it, only agents' bus identities reach them. */
  Peer: 'peer',
  /** Hypervisor-specific calls that reach around the agent (QMP passthrough, entering namespaces). */
  Hypervisor: 'hypervisor',
} as const;
export type PermissionClass = (typeof PermissionClass)[keyof typeof PermissionClass];

/** OpenAPI tags the HTTP operations are grouped under. */
export const HttpTags = {
  Nodes: 'nodes',
  Domains: 'domains',
  Events: 'events',
  Console: 'console',
  Storage: 'storage',
  Interfaces: 'interfaces',
  Firewall: 'firewall',
  Networks: 'networks',
} as const;
export type HttpTag = (typeof HttpTags)[keyof typeof HttpTags];

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/**
 * How an operation is reached over HTTP. The request sent to the agent is built from the path parameters (by name, or
 * renamed with `params`), the query string and the body: `true` spreads them into the request, a string puts them
 * under that request field. Their schemas are the request's own fields, so HTTP and bus validate alike.
 */
export interface HttpBinding {
  readonly method: HttpMethod;
  /** Fastify-style path below NODE_PATH (whose `:node` addresses the agent); '' is the node itself. */
  readonly path: string;
  readonly operationId: string;
  readonly tag: HttpTag;
  /** Success status (200 when absent). */
  readonly status?: 200 | 201 | 202;
  /** Longer text for the API document. */
  readonly description?: string;
  readonly body?: true | string;
  readonly query?: true | string;
  /** Path parameter → request field, where their names differ. */
  readonly params?: Readonly<Record<string, string>>;
  /** Registered by hand (byte streams, calls to several agents); the binding still names its path and document. */
  readonly served?: 'hand';
}

/** Every table route addresses one node's agent. */
export const NODE_PATH = '/v1/nodes/:node';

/** The full Fastify-style path of a binding. */
export function httpPath(binding: Pick<HttpBinding, 'path'>): string {
  return `${NODE_PATH}${binding.path}`;
}

/** How long a caller waits for the reply: the request's own timeout field (seconds) or `seconds`, plus a margin. */
export interface ReplyWait {
  readonly seconds: number;
  /** Dotted path of a request field holding the operation's own timeout in seconds. */
  readonly field?: string;
  readonly marginSeconds?: number;
}

/** The codes every verb on one kind of object may return (no such object, wrong state, driver cannot): one list per kind. */
export const ObjectErrors = {
  domain: ['NO_DOMAIN', 'OPERATION_INVALID', 'OPERATION_UNSUPPORTED'],
  snapshot: ['NO_DOMAIN', 'NOT_FOUND', 'OPERATION_INVALID', 'OPERATION_UNSUPPORTED'],
  disk: ['NO_DOMAIN', 'NO_STORAGE_POOL', 'NO_STORAGE_VOL', 'OPERATION_INVALID', 'PAYLOAD_TOO_LARGE', 'OPERATION_UNSUPPORTED'],
  saveFile: ['NO_DOMAIN', 'NO_STORAGE_POOL', 'NOT_FOUND', 'OPERATION_INVALID', 'PAYLOAD_TOO_LARGE', 'OPERATION_UNSUPPORTED'],
  pool: ['NO_STORAGE_POOL', 'OPERATION_INVALID'],
  volume: ['NO_STORAGE_POOL', 'NO_STORAGE_VOL', 'OPERATION_INVALID', 'OPERATION_UNSUPPORTED'],
  network: ['NO_NETWORK', 'OPERATION_INVALID'],
} as const satisfies Record<string, readonly ErrorCode[]>;

export interface OperationSpec {
  readonly access: Access;
  readonly request: TSchema;
  readonly response: TSchema;
  readonly summary: string;
  /** Permission class the caller's role must cover. */
  readonly permission: PermissionClass;
  /** Error codes of this operation beyond those of every call (bad input, auth, unreachable node, timeout, failure). */
  readonly errors?: readonly ErrorCode[];
  readonly http?: HttpBinding;
  /** Calls that may take longer than the caller's default request timeout. */
  readonly wait?: ReplyWait;
  /** Only domains of these drivers (or the driver a node-level request names) are served; every other driver answers OPERATION_UNSUPPORTED. */
  readonly drivers?: readonly DomainDriver[];
}

/** The sentence the API document adds to a driver-specific operation. */
export function driversNote(drivers: readonly DomainDriver[]): string {
  return `Driver-specific: served for ${drivers.join(', ')} only; other drivers answer OPERATION_UNSUPPORTED (501).`;
}

/** Milliseconds to wait for the reply to `request`, never less than `minimumMs`. */
export function replyWaitMs(spec: Pick<OperationSpec, 'wait'>, request: unknown, minimumMs: number): number {
  const wait = spec.wait;
  if (!wait) return minimumMs;
  let value: unknown = request;
  for (const key of wait.field?.split('.') ?? []) value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
  const seconds = (typeof value === 'number' && wait.field ? value : wait.seconds) + (wait.marginSeconds ?? 0);
  return Math.max(minimumMs, seconds * 1000);
}

/** The URL of an HTTP-bound operation with its path parameters filled in (percent-encoded). */
export function operationPath(binding: Pick<HttpBinding, 'path'>, params: Readonly<Record<string, string>>): string {
  const path = httpPath(binding);
  return path.replace(/:(\w+)/g, (_match, name: string) => {
    const value = params[name];
    if (value === undefined) throw new Error(`${path}: no value for :${name}`);
    return encodeURIComponent(value);
  });
}

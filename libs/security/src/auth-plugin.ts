import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import { VirtError, isNodeName, type CallerIdentity, type ErrorCode, type OperationName } from '@virtbus/api-contract';
import { isLoopbackHost } from './loopback.js';
import { nodesFromUnit } from './pki.js';
import { Role, isRole, minimumRoleFor, roleAtLeast, type PermissionClass } from './roles.js';
import { verifyToken, type TokenRecord } from './tokens.js';

/** Who is calling, as every route and the audit log see it. */
export interface Identity {
  name: string;
  role: Role;
  /** Nodes this caller may reach; `all` for every node. */
  nodes: 'all' | readonly string[];
  via: CallerIdentity['via'];
}

declare module 'fastify' {
  interface FastifyRequest {
    identity: Identity | null;
  }
  interface FastifyContextConfig {
    /** `false` exempts a route (health, OpenAPI document) from authentication. */
    auth?: boolean;
    /** Nodes the call reaches besides its `:node` (a migration's destination): each must be in the caller's scope and is audited. */
    touchesNodes?: (request: FastifyRequest) => readonly string[];
  }
}

export interface CertificateMapping {
  role: Role;
  nodes?: readonly string[];
}

export interface AuthPluginOptions {
  /** Token records (or a getter, so the gateway can reload the file). */
  tokens?: readonly TokenRecord[] | (() => readonly TokenRecord[]);
  /**
   * Accept verified TLS client certificates: the role comes from `mapping[CN]`, else from the certificate's first OU
   * when it names a role, limited to the nodes of a second OU `nodes a b`. The HTTPS server must use `requestCert: true` with the virtbus CA.
   */
  certificates?: { mapping?: Readonly<Record<string, CertificateMapping>> };
  /** The address the server listens on; dev mode (no credentials configured) is only for loopback. */
  listenHost?: string;
  /** Paths that need no credentials (exact match, query ignored). */
  publicPaths?: readonly string[];
  /** Rate limit of refused callers (the per-identity limit runs after authentication): milliseconds to wait, 0 = go on. */
  limitRefused?: (request: FastifyRequest) => number;
  now?: () => Date;
}

export function canSeeNode(identity: Identity | null, node: string): boolean {
  return identity !== null && (identity.nodes === 'all' || identity.nodes.includes(node));
}

/** Filters a list down to the nodes the caller may see (list endpoints show nothing else). */
export function visibleNodes<T>(identity: Identity | null, items: readonly T[], nodeOf: (item: T) => string): T[] {
  return items.filter((item) => canSeeNode(identity, nodeOf(item)));
}

export function sendError(reply: FastifyReply, code: ErrorCode, message: string): FastifyReply {
  const body = new VirtError(code, message).toBody();
  if (code === 'UNAUTHORIZED') reply.header('www-authenticate', 'Bearer realm="virtbus"');
  return reply.code(body.status).send(body);
}

/** A browser cannot set headers on a WebSocket: it offers the token as the subprotocol `virtbus.bearer.<token>` beside the real one. */
export const BEARER_SUBPROTOCOL_PREFIX = 'virtbus.bearer.';

/** The Authorization header, or on a WebSocket upgrade without one the bearer token offered as a subprotocol. */
export function bearerOf(request: FastifyRequest): string | undefined {
  if (request.headers.authorization !== undefined) return request.headers.authorization;
  const offered = request.headers['sec-websocket-protocol'];
  if (typeof offered !== 'string' || request.headers.upgrade?.toLowerCase() !== 'websocket') return undefined;
  const token = offered
    .split(',')
    .map((protocol) => protocol.trim())
    .find((protocol) => protocol.startsWith(BEARER_SUBPROTOCOL_PREFIX));
  return token === undefined ? undefined : `Bearer ${token.slice(BEARER_SUBPROTOCOL_PREFIX.length)}`;
}

type Authentication = { identity: Identity } | { error: ErrorCode; message: string } | null;

function fromToken(header: string, records: readonly TokenRecord[], now: Date): Authentication {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) return { error: 'UNAUTHORIZED', message: 'the Authorization header must be "Bearer <token>"' };
  const check = verifyToken(records, match[1] as string, now);
  if (!check.ok) return { error: 'UNAUTHORIZED', message: check.reason === 'expired' ? 'the token has expired' : 'invalid token' };
  const { record } = check;
  return { identity: { name: record.name, role: record.role, nodes: record.nodes ?? 'all', via: 'token' } };
}

function fromCertificate(request: FastifyRequest, mapping: Readonly<Record<string, CertificateMapping>>): Authentication {
  const socket = request.raw.socket as Partial<TLSSocket>;
  if (typeof socket.getPeerCertificate !== 'function' || !socket.authorized) return null;
  const subject = socket.getPeerCertificate().subject as Record<string, string | string[]> | undefined;
  const all = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
  const cn = all(subject?.CN)[0];
  if (!cn) return null;
  const mapped = mapping[cn];
  if (mapped) return { identity: { name: cn, role: mapped.role, nodes: mapped.nodes ?? 'all', via: 'certificate' } };
  const units = all(subject?.OU);
  const role = units[0];
  if (!isRole(role)) return { error: 'FORBIDDEN', message: `certificate ${cn} carries no virtbus role` };
  // the node scope travels in the certificate (OU `nodes a b`), like a token's nodes
  const scopes = units.slice(1).map(nodesFromUnit);
  if (scopes.length > 1 || scopes.some((nodes) => nodes === undefined || nodes.length === 0 || !nodes.every(isNodeName))) {
    return { error: 'FORBIDDEN', message: `certificate ${cn} has an unknown organisational unit` };
  }
  return { identity: { name: cn, role, nodes: scopes[0] ?? 'all', via: 'certificate' } };
}

/** The listening address, read once per server: it cannot change while listening. */
function boundHostReader(app: FastifyInstance, fallback: string | undefined): () => string | undefined {
  let bound: string | undefined;
  return () => {
    if (bound !== undefined) return bound;
    const address = app.server.address();
    if (address && typeof address === 'object') bound = address.address;
    return bound ?? fallback;
  };
}

/**
 * Authenticates every request by bearer token or TLS client certificate and decorates `request.identity`.
 * With neither configured it is loopback-only dev mode: every caller is admin, but only when the server listens on loopback.
 */
export const authPlugin: FastifyPluginAsync<AuthPluginOptions> = async (app, options) => {
  const tokens = options.tokens;
  const getTokens = typeof tokens === 'function' ? tokens : () => tokens ?? [];
  const certificates = options.certificates;
  const devMode = tokens === undefined && certificates === undefined;
  const publicPaths = new Set(options.publicPaths ?? []);
  const now = options.now ?? (() => new Date());
  if (devMode) {
    const host = options.listenHost;
    if (host !== undefined && !isLoopbackHost(host)) {
      throw new VirtError('OPERATION_INVALID', `no tokens or client certificates configured: refusing dev mode (everyone is admin) on ${host}`);
    }
  }

  const boundHost = boundHostReader(app, options.listenHost);
  // a server sees few local addresses: remember each answer instead of parsing the address on every request
  const loopbackAnswers = new Map<string, boolean>();
  const isLoopback = (address: string): boolean => {
    let answer = loopbackAnswers.get(address);
    if (answer === undefined) {
      answer = isLoopbackHost(address);
      if (loopbackAnswers.size < 64) loopbackAnswers.set(address, answer);
    }
    return answer;
  };
  app.decorateRequest('identity', null);
  // a callback hook: it runs on every request, and a promise each costs more than the check
  app.addHook('onRequest', (request, reply, done) => {
    const refused = authenticate(request, reply);
    if (refused === undefined) done();
  });
  /** Sets request.identity; answers (and returns the reply) when the caller is refused. */
  function authenticate(request: FastifyRequest, reply: FastifyReply): FastifyReply | undefined {
    if (request.routeOptions.config?.auth === false || publicPaths.has(request.url.split('?')[0] as string)) return undefined;
    let result: Authentication = null;
    const header = bearerOf(request);
    if (header !== undefined) result = fromToken(header, getTokens(), now());
    else if (certificates) result = fromCertificate(request, certificates.mapping ?? {});
    if (result === null && devMode) {
      const host = boundHost();
      // injected WebSocket requests (tests) have no socket
      const local = (request.raw.socket as { localAddress?: string } | undefined)?.localAddress;
      if (host !== undefined && isLoopback(host) && (local === undefined || isLoopback(local))) {
        result = { identity: { name: 'loopback-dev', role: Role.Admin, nodes: 'all', via: 'loopback-dev' } };
      }
    }
    if (result === null || 'error' in result) {
      // unauthenticated callers are limited too, so guessing credentials costs time
      const waitMs = options.limitRefused?.(request) ?? 0;
      if (waitMs > 0) {
        reply.header('retry-after', String(Math.ceil(waitMs / 1000)));
        return sendError(reply, 'RATE_LIMITED', `too many requests: retry in ${Math.ceil(waitMs / 1000)} s`);
      }
    }
    if (result === null) return sendError(reply, 'UNAUTHORIZED', 'authentication required: send "Authorization: Bearer <token>" or a client certificate');
    if ('error' in result) return sendError(reply, result.error, result.message);
    request.identity = result.identity;
    return undefined;
  }
};
(authPlugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;

function nodeParam(request: FastifyRequest, name: string): string | undefined {
  const params = request.params as Record<string, unknown> | undefined;
  const value = params?.[name];
  return typeof value === 'string' ? value : undefined;
}

/** The nodes a route declares it reaches besides `:node` (none for most routes). */
export function nodesTouched(request: FastifyRequest): readonly string[] {
  return request.routeOptions.config?.touchesNodes?.(request) ?? [];
}

/** Why the caller may not make this request (401 without an identity, 403 below `role` or outside its nodes), or undefined. */
export function roleRefusal(request: FastifyRequest, role: Role | null, paramName = 'node'): { code: ErrorCode; message: string } | undefined {
  const identity = request.identity;
  if (!identity) return { code: 'UNAUTHORIZED', message: 'authentication required' };
  if (!roleAtLeast(identity.role, role)) return { code: 'FORBIDDEN', message: `${identity.name} has role ${identity.role}; this needs ${role ?? 'an agent'}` };
  const node = nodeParam(request, paramName);
  if (node !== undefined && !canSeeNode(identity, node)) return { code: 'FORBIDDEN', message: `${identity.name} may not use node ${node}` };
  for (const other of nodesTouched(request)) {
    if (!canSeeNode(identity, other)) return { code: 'FORBIDDEN', message: `${identity.name} may not use node ${other}` };
  }
  return undefined;
}

/** preHandler: 401 without an identity, 403 below `role` or when `:node` (or a node the route touches) is outside the caller's nodes. */
export function requireRole(role: Role | null, options: { nodeParam?: string } = {}): preHandlerAsyncHookHandler {
  const paramName = options.nodeParam ?? 'node';
  return async function checkRole(request, reply) {
    const refusal = roleRefusal(request, role, paramName);
    if (refusal) return sendError(reply, refusal.code, refusal.message);
  };
}

/** preHandler for an operation or permission class, using the role table. */
export function requirePermission(what: PermissionClass | OperationName, options: { nodeParam?: string } = {}): preHandlerAsyncHookHandler {
  return requireRole(minimumRoleFor(what), options);
}

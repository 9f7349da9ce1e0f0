import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Subjects, type ErrorCode, type OperationName } from '@virtbus/api-contract';
import {
  traceIdFrom,
  minimumRoleFor,
  PermissionClass,
  roleRefusal,
  sendError,
  type Role,
  AuditLog,
  auditPlugin,
  authPlugin,
  rateLimitPlugin,
  TokenBuckets,
  type AuditRecord,
  type AuthPluginOptions,
  type CertificateMapping,
  type TokenRecord,
} from '@virtbus/security';
import { shared } from './skip-override.js';

export interface GatewaySecurityOptions {
  /** Bearer-token records (or a getter for a reloaded file); absent with no certificates = loopback-only dev mode. */
  tokens?: readonly TokenRecord[] | (() => readonly TokenRecord[]);
  /** Accept verified client certificates (the HTTPS server must request them). */
  certificates?: { mapping?: Readonly<Record<string, CertificateMapping>> };
  /** Address the server will listen on; dev mode is refused off loopback. */
  listenHost?: string;
  /** JSON-lines audit file; no local file when absent (records still go on the bus). */
  auditFile?: string;
  /** Publishes audit records on `virt.v1._audit.<gatewayId>`; off when absent. */
  gatewayId?: string;
  /** Requests per second per identity (burst twice that); off when absent. */
  rateLimitPerSecond?: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    auditLog: AuditLog;
  }
  interface FastifyContextConfig {
    /** What the route does, for the role check; unset means read for GET and admin-only for anything else. */
    permission?: PermissionClass | OperationName;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD']);

/** An audit record for calls the audit plugin does not see as mutating (the console WebSocket). */
export function auditRecordOf(request: FastifyRequest, action: string, status: number, errorCode?: ErrorCode): AuditRecord {
  const identity = request.identity ?? null;
  const params = (request.params ?? {}) as { node?: string; id?: string };
  return {
    time: new Date().toISOString(),
    identity: identity?.name ?? 'anonymous',
    role: identity?.role ?? null,
    via: identity?.via ?? null,
    action,
    node: params.node ?? null,
    object: params.id ?? null,
    result: status < 400 ? 'ok' : 'error',
    status,
    ...(errorCode ? { errorCode } : {}),
    traceId: traceIdFrom(request.headers.traceparent),
    remoteAddress: request.ip ?? null,
  };
}

/** Authentication, per-identity rate limit and the audit log of mutating calls, for the whole app. */
async function securityPlugin(app: FastifyInstance, options: GatewaySecurityOptions): Promise<void> {
  const auth: AuthPluginOptions = {
    listenHost: options.listenHost ?? '127.0.0.1',
    publicPaths: ['/openapi.json'],
    ...(options.tokens !== undefined ? { tokens: options.tokens } : {}),
    ...(options.certificates !== undefined ? { certificates: options.certificates } : {}),
  };
  const limited = options.rateLimitPerSecond !== undefined && options.rateLimitPerSecond > 0;
  const buckets = limited ? { refillPerSecond: options.rateLimitPerSecond as number, capacity: Math.max(1, Math.ceil((options.rateLimitPerSecond as number) * 2)) } : undefined;
  if (buckets) {
    // refused callers (no or bad credentials) share one bucket per client address
    const refused = new TokenBuckets(buckets);
    auth.limitRefused = (request) => refused.take(`ip:${request.ip}`);
  }
  await app.register(authPlugin, auth);
  if (buckets) await app.register(rateLimitPlugin, buckets);
  // before body validation, so a caller without the role learns nothing about the input it sent
  // a callback hook (it runs on every request, and a promise each costs more than the check); the role per permission once
  const roles = new Map<string, Role | null>();
  app.addHook('preValidation', function checkRole(request, reply, done) {
    const config = request.routeOptions.config;
    if (request.is404 || config?.auth === false) return done();
    const permission = config?.permission ?? (SAFE_METHODS.has(request.method) ? PermissionClass.Read : PermissionClass.Define);
    let role = roles.get(permission);
    if (role === undefined) {
      role = minimumRoleFor(permission);
      roles.set(permission, role);
    }
    const refusal = roleRefusal(request, role);
    if (refusal) return void sendError(reply, refusal.code, refusal.message);
    done();
  });

  const gatewayId = options.gatewayId;
  const subject = gatewayId === undefined ? undefined : Subjects.audit(gatewayId);
  const log = new AuditLog({
    ...(options.auditFile ? { file: options.auditFile } : {}),
    ...(subject
      ? {
          publish: async (record: AuditRecord) => {
            const nc = await app.agents.connection();
            nc.publish(subject, JSON.stringify(record));
          },
        }
      : {}),
    onError: (error) => app.log.error({ err: error }, 'audit record not written'),
  });
  app.decorate('auditLog', log);
  await app.register(auditPlugin, { log });
}

export default shared(securityPlugin);

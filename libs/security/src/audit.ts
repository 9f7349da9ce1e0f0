import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import Type, { type Static } from 'typebox';
import { CallerVias, ErrorCodes, compileValidator } from '@virtbus/api-contract';
import { nodesTouched } from './auth-plugin.js';
import { Roles, type Role } from './roles.js';

/** One mutating call: who, what, on which node and object, with what result and trace. */
export const AuditRecord = Type.Object(
  {
    time: Type.String({ format: 'date-time' }),
    identity: Type.String({ description: 'Token or certificate name, or loopback-dev' }),
    role: Type.Union([Type.Enum(Roles as Role[]), Type.Null()]),
    via: Type.Union([Type.Enum([...CallerVias]), Type.Null()]),
    action: Type.String({ description: 'Operation name, or METHOD and route' }),
    node: Type.Union([Type.String(), Type.Null()]),
    nodes: Type.Optional(Type.Array(Type.String(), { description: 'Every node the call touches (source first) when it reaches more than its own' })),
    object: Type.Union([Type.String(), Type.Null()], { description: 'Domain (or other object) uuid or name' }),
    result: Type.Enum(['ok', 'error']),
    status: Type.Integer(),
    errorCode: Type.Optional(Type.Enum(ErrorCodes)),
    traceId: Type.Union([Type.String(), Type.Null()]),
    remoteAddress: Type.Union([Type.String(), Type.Null()]),
  },
  { additionalProperties: false, title: 'AuditRecord' },
);
export type AuditRecord = Static<typeof AuditRecord>;
export const auditRecordValidator = compileValidator(AuditRecord);

/** The trace id of a W3C `traceparent` header, when it is well formed. */
export function traceIdFrom(traceparent: string | string[] | undefined): string | null {
  const value = Array.isArray(traceparent) ? traceparent[0] : traceparent;
  const match = value ? /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(value.trim()) : null;
  return match && !/^0+$/.test(match[1] as string) ? (match[1] as string) : null;
}

export interface AuditLogOptions {
  /** JSON-lines file; appends only (no fsync: audit must never stall the API). */
  file?: string;
  /** Called for every record, e.g. to publish it on the bus; its failures are reported, never thrown. */
  publish?: (record: AuditRecord) => void | Promise<void>;
  onError?: (error: unknown) => void;
}

/** Writes records in call order: appends are chained so lines never interleave. */
export class AuditLog {
  private tail: Promise<void> = Promise.resolve();
  private directoryReady: Promise<unknown> | undefined;

  constructor(private readonly options: AuditLogOptions) {}

  write(record: AuditRecord): Promise<void> {
    auditRecordValidator.parse(record);
    const onError = this.options.onError ?? ((error: unknown) => console.error('audit log:', error));
    if (this.options.publish) {
      try {
        Promise.resolve(this.options.publish(record)).catch(onError);
      } catch (error) {
        onError(error);
      }
    }
    const file = this.options.file;
    if (!file) return Promise.resolve();
    this.directoryReady ??= mkdir(dirname(file), { recursive: true });
    const line = `${JSON.stringify(record)}\n`;
    this.tail = this.tail.then(() => this.directoryReady).then(() => appendFile(file, line, { mode: 0o600 })).catch(onError);
    return this.tail;
  }

  /** Resolves when every record written so far is in the file. */
  flush(): Promise<void> {
    return this.tail;
  }
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export interface AuditPluginOptions {
  log: AuditLog;
  /** Names the action of a request; defaults to `METHOD /route/pattern`. */
  action?: (request: FastifyRequest) => string;
}

function param(request: FastifyRequest, ...names: string[]): string | null {
  const params = (request.params ?? {}) as Record<string, unknown>;
  for (const name of names) if (typeof params[name] === 'string') return params[name] as string;
  return null;
}

/** Records every mutating request (including refused ones) once the response is sent. */
export const auditPlugin: FastifyPluginAsync<AuditPluginOptions> = async (app, options) => {
  const errorCodes = new WeakMap<FastifyRequest, string>();
  // the error body's code is only visible while the payload is being sent
  // callback hooks: they run on every request (reads included), and a promise each costs more than the method check
  app.addHook('onSend', (request, reply, payload, done) => {
    if (MUTATING.has(request.method) && reply.statusCode >= 400 && typeof payload === 'string' && payload.length < 65_536) {
      try {
        const code = (JSON.parse(payload) as { code?: unknown }).code;
        if (typeof code === 'string') errorCodes.set(request, code);
      } catch {
        // not a JSON error body
      }
    }
    done(null, payload);
  });
  app.addHook('onResponse', (request, reply, done) => {
    if (!MUTATING.has(request.method)) return done();
    const identity = request.identity ?? null;
    const status = reply.statusCode;
    const errorCode = errorCodes.get(request);
    const node = param(request, 'node');
    const others = nodesTouched(request);
    const record: AuditRecord = {
      time: new Date().toISOString(),
      identity: identity?.name ?? 'anonymous',
      role: identity?.role ?? null,
      via: identity?.via ?? null,
      action: options.action?.(request) ?? `${request.method} ${request.routeOptions.url ?? request.url.split('?')[0]}`,
      node,
      ...(others.length ? { nodes: [...new Set([...(node === null ? [] : [node]), ...others])] } : {}),
      object: param(request, 'id', 'uuid', 'name', 'pool', 'network', 'interface'),
      result: status < 400 ? 'ok' : 'error',
      status,
      ...(errorCode && (ErrorCodes as string[]).includes(errorCode) ? { errorCode: errorCode as AuditRecord['errorCode'] } : {}),
      traceId: traceIdFrom(request.headers.traceparent),
      remoteAddress: request.ip ?? null,
    };
    options.log.write(record).then(() => done(), done);
  });
};
(auditPlugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;

import type { ServerOptions as HttpsServerOptions } from 'node:https';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyServerOptions } from 'fastify';
import websocket from '@fastify/websocket';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { VirtError } from '@virtbus/api-contract';
import { BEARER_SUBPROTOCOL_PREFIX } from '@virtbus/security';
import agentClient, { type NatsSource } from './plugins/agent-client.js';
import fleetIndex from './plugins/fleet-index.js';
import errors, { formatValidationErrors, toErrorBody } from './plugins/errors.js';
import health from './plugins/health.js';
import idempotency from './plugins/idempotency.js';
import limitsPlugin, { resolveLimits, type GatewayLimits } from './plugins/limits.js';
import { cachedSerializerFactory } from './plugins/serializers.js';
import liveStreams from './plugins/live-streams.js';
import monitoring, { createGatewayMonitoring, injectActiveTrace, type GatewayMonitoringOptions } from './plugins/monitoring.js';
import openapi from './plugins/openapi.js';
import security, { type GatewaySecurityOptions } from './plugins/security.js';
import { validatorCompiler } from './plugins/validator.js';
import { consoleRoutes } from './routes/console.js';
import { uiRoutes } from './routes/ui.js';
import { eventRoutes } from './routes/events.js';
import { migrationRoutes } from './routes/migration.js';
import { nodeRoutes } from './routes/nodes.js';
import { operationRoutes } from './routes/operations.js';
import { storageRoutes } from './routes/storage.js';
import { fleetRoutes } from './routes/fleet.js';
import { identityRoutes } from './routes/identity.js';
import { sharedSchemaDefinitions } from './schemas.js';
import type { TraceInjector } from './trace.js';

export const DEFAULT_BODY_LIMIT = 1024 * 1024;
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

export interface GatewayDeps {
  /** The NATS connection, or a function that yields it on first use (the OpenAPI document needs none). */
  nc: NatsSource;
  logger?: FastifyServerOptions['logger'];
  bodyLimit?: number;
  requestTimeoutMs?: number;
  /** Check agent replies against the contract; on unless NODE_ENV is production. */
  validateReplies?: boolean;
  /** Adds W3C trace context to agent requests; by default the active span's (nothing when untraced). */
  injectTrace?: TraceInjector;
  /** Registry and metrics behind GET /metrics; a fresh registry by default. */
  monitoring?: GatewayMonitoringOptions;
  /** SSE heartbeat interval (tests shorten it). */
  heartbeatMs?: number;
  /** How long an SSE consumer may stay silent with events pending before it is replaced (default 5 s). */
  sseStallCheckMs?: number;
  /** How long a lost or not yet made SSE consumer is retried before the stream fails (default 30 s; a new stream waits at most 10 s). */
  sseResumeDeadlineMs?: number;
  /** How long GET /v1/nodes waits for the node registry's first load. */
  discoveryWaitMs?: number;
  /** A node is listed online while its last registry heartbeat is younger than this (15 s by default). */
  onlineWithinMs?: number;
  /** Fleet index (GET /v1/domains): how long its first request waits for every node's first list. */
  fleetInitialWaitMs?: number;
  /** Authentication, rate limit and audit; defaults to loopback-only dev mode (everyone admin) with no audit file. */
  security?: GatewaySecurityOptions;
  /** Connection, body and stream bounds (timeouts, SSE and console caps); defaults in plugins/limits.ts. */
  limits?: GatewayLimits;
  /** The built web UI served at /ui (dist/web); without it /ui answers 404. */
  uiDir?: string;
  /** HTTPS server options (cert, key, ca, requestCert…); plain HTTP when absent. */
  https?: HttpsServerOptions;
}

export type GatewayApp = FastifyInstance;

export async function buildApp(deps: GatewayDeps): Promise<GatewayApp> {
  const requestTimeoutMs = deps.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const limits = resolveLimits(deps.limits);
  const base = Fastify({
    logger: deps.logger ?? false,
    bodyLimit: deps.bodyLimit ?? DEFAULT_BODY_LIMIT,
    schemaErrorFormatter: formatValidationErrors,
    // Upgraded and streaming connections end through liveStreams; idle keep-alive sockets close at once.
    forceCloseConnections: 'idle',
    // no request may hold a connection forever: whole request (uploads included), idle socket, idle keep-alive
    requestTimeout: limits.requestTimeoutMs,
    connectionTimeout: limits.connectionTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    return503OnClosing: false,
    schemaController: { compilersFactory: { buildSerializer: cachedSerializerFactory } },
    // the router's own rejections (malformed or over-long URL parameters) answer with the contract's error body too
    frameworkErrors: (error, _request, reply) => {
      const code = (error as { code?: string }).code;
      const body = code === 'FST_ERR_BAD_URL' || code === 'FST_ERR_MAX_PARAM_LENGTH' ? new VirtError('INVALID_ARG', error.message).toBody() : toErrorBody(error);
      void (reply as unknown as FastifyReply).code(body.status).send(body);
    },
    // an HTTPS instance has the same API; the type only differs in the raw server
    ...(deps.https ? { https: deps.https } : {}),
  } as FastifyServerOptions) as unknown as FastifyInstance;
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  app.server.headersTimeout = limits.requestTimeoutMs > 0 ? Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) : limits.headersTimeoutMs;
  app.setValidatorCompiler(validatorCompiler);
  // JSON only: a text/plain body would otherwise reach validation as a string.
  app.removeContentTypeParser('text/plain');
  for (const schema of sharedSchemaDefinitions()) app.addSchema(schema);

  const watch = deps.monitoring ?? createGatewayMonitoring();
  await app.register(errors);
  // A request on a kept-alive connection while the gateway closes: the contract's 503 (Fastify's own has another body), connection closed.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  // callback hooks, not async ones: they run on every request and a promise each costs more than the check
  app.addHook('onRequest', (_request, reply, done) => {
    if (!closing) return done();
    const body = new VirtError('SHUTTING_DOWN', 'the gateway is shutting down; retry the request').toBody();
    void reply.header('connection', 'close').code(body.status).send(body);
  });
  // an answer that was in flight when closing began ends its keep-alive socket too, else the socket holds close() open
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });
  // a refused WebSocket upgrade (401, 403, 429…): its socket left the HTTP server's tracking, so nothing closes it but us
  app.addHook('onResponse', (request, reply, done) => {
    if (request.headers.upgrade?.toLowerCase() === 'websocket' && reply.statusCode !== 101) request.raw.socket?.destroySoon();
    done();
  });
  await app.register(liveStreams);
  await app.register(monitoring, watch);
  await app.register(agentClient, {
    nc: deps.nc,
    requestTimeoutMs,
    validateReplies: deps.validateReplies ?? process.env['NODE_ENV'] !== 'production',
    injectTrace: deps.injectTrace ?? injectActiveTrace,
    observeCall: (node, operation, code, seconds) => watch.metrics.observeBusCall(node, operation, code, seconds),
    ...(deps.discoveryWaitMs ? { discoveryWaitMs: deps.discoveryWaitMs } : {}),
    ...(deps.onlineWithinMs ? { onlineWithinMs: deps.onlineWithinMs } : {}),
  });
  await app.register(fleetIndex, deps.fleetInitialWaitMs !== undefined ? { initialWaitMs: deps.fleetInitialWaitMs } : {});
  await app.register(security, deps.security ?? {});
  await app.register(health);
  await app.register(limitsPlugin, limits);
  await app.register(idempotency);
  await app.register(openapi);
  await app.register(websocket, {
    options: {
      maxPayload: DEFAULT_BODY_LIMIT,
      // the first offered subprotocol (`binary` for noVNC), never the one carrying a token
      handleProtocols: (protocols: Set<string>) => [...protocols].find((protocol) => !protocol.startsWith(BEARER_SUBPROTOCOL_PREFIX)) ?? false,
    },
  });

  await app.register(nodeRoutes);
  // every request/reply operation of the contract's table; the routes below are the hand-written rest
  await app.register(operationRoutes, { requestTimeoutMs });
  await app.register(eventRoutes, { ...(deps.heartbeatMs ? { heartbeatMs: deps.heartbeatMs } : {}), ...(deps.sseStallCheckMs ? { stallCheckMs: deps.sseStallCheckMs } : {}), ...(deps.sseResumeDeadlineMs ? { resumeDeadlineMs: deps.sseResumeDeadlineMs } : {}) });
  await app.register(consoleRoutes, { idleTimeoutMs: limits.consoleIdleTimeoutMs });
  await app.register(storageRoutes);
  await app.register(migrationRoutes);
  await app.register(fleetRoutes);
  await app.register(identityRoutes);
  await app.register(uiRoutes, deps.uiDir !== undefined ? { dir: deps.uiDir } : {});
  return app;
}

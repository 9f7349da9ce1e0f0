import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { IDEMPOTENCY_HEADER, isIdempotencyKey, VirtError } from '@virtbus/api-contract';
import { runWithIdempotencyKey } from './agent-client.js';
import { shared } from './skip-override.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const HEADER = IDEMPOTENCY_HEADER.toLowerCase();

/** Runs a write with an Idempotency-Key header so its agent calls carry the key, scoped to the caller. */
async function idempotencyPlugin(app: FastifyInstance): Promise<void> {
  // preValidation runs after the body is read, whose events would otherwise lose the async context
  app.addHook('preValidation', (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) => {
    const raw = request.headers[HEADER];
    if (raw === undefined || SAFE_METHODS.has(request.method)) return done();
    const key = Array.isArray(raw) ? raw[0] : raw;
    if (!isIdempotencyKey(key)) return done(new VirtError('INVALID_ARG', `${IDEMPOTENCY_HEADER} must be 1 to 255 visible ASCII characters`));
    // one caller's key never answers another caller's request
    const scoped = createHash('sha256').update(request.identity?.name ?? '').update('\0').update(key).digest('base64url');
    runWithIdempotencyKey(scoped, () => done());
  });
}

export default shared(idempotencyPlugin);

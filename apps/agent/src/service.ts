import { Svcm, type Service, type ServiceMsg } from '@nats-io/services';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  AGENT_SERVICE_NAME,
  IDEMPOTENCY_HEADER,
  isIdempotencyKey,
  Operations,
  OperationNames,
  Subjects,
  VirtError,
  compileValidator,
  type ErrorBody,
  type OperationName,
  type OperationRequest,
  type OperationResponse,
  type Validator,
} from '@virtbus/api-contract';
import type { Logger } from 'pino';
import { fingerprintOf, NOT_REPLAYABLE, type IdempotencyStore } from './idempotency.js';

export interface MsgHeaderReader {
  get(name: string): string;
}

export interface CallContext {
  operation: OperationName;
  headers: MsgHeaderReader;
  /** The bus max_payload now: no reply may be larger (lists cut their pages below it). */
  maxReplyBytes: number;
}

/** nats-server's default max_payload, for a connection that has not received INFO yet. */
export const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

export type OperationHandlers = {
  [N in OperationName]: (request: OperationRequest<N>, context: CallContext) => Promise<OperationResponse<N>>;
};

export interface ServeOptions {
  nc: NatsConnection;
  node: string;
  version: string;
  handlers: OperationHandlers;
  logger: Logger;
  /** Wraps every call (tracing, metrics); must call `run`. */
  around?: <T>(context: CallContext, run: () => Promise<T>) => Promise<T>;
  onResult?: (operation: OperationName, code: string, durationMs: number) => void;
  /** Writes carrying an Idempotency-Key header are answered from here when repeated. */
  idempotency?: IdempotencyStore;
}

const validators = Object.fromEntries(OperationNames.map((name) => [name, compileValidator(Operations[name].request)])) as {
  [N in OperationName]: Validator<OperationRequest<N>>;
};

function toErrorBody(error: unknown): ErrorBody {
  if (error instanceof VirtError) return error.toBody();
  return new VirtError('INTERNAL', 'internal error').toBody();
}

function replyError(msg: ServiceMsg, body: ErrorBody): void {
  // The description travels in a NATS header: a CR or LF there throws and would take the agent down.
  msg.respondError(body.status, body.message.replace(/[\r\n]+/g, ' ').slice(0, 1024), JSON.stringify({ error: body }));
}

/** Sends a result unless it is larger than the bus carries; returns the error body sent instead, if any. */
function replyResult(msg: ServiceMsg, operation: OperationName, result: unknown, maxReplyBytes: number): ErrorBody | undefined {
  let text: string;
  try {
    text = JSON.stringify({ result });
  } catch (error) {
    return new VirtError('INTERNAL', `the ${operation} reply could not be encoded`, { cause: error }).toBody();
  }
  const size = Buffer.byteLength(text);
  if (size > maxReplyBytes) {
    return new VirtError('REPLY_TOO_LARGE', `the ${operation} reply is ${size} bytes, more than the bus max_payload of ${maxReplyBytes}`).toBody();
  }
  try {
    msg.respond(text);
    return undefined;
  } catch (error) {
    // the server may have lowered max_payload since INFO; answered as an error instead of throwing out of the handler
    return (VirtError.is(error) ? error : new VirtError('REPLY_TOO_LARGE', `the ${operation} reply was refused by the bus: ${(error as Error).message}`, { cause: error })).toBody();
  }
}

function decode(msg: ServiceMsg): unknown {
  if (msg.data.length === 0) return {};
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(msg.data)) as unknown;
  } catch (error) {
    throw new VirtError('INVALID_ARG', 'request body is not valid UTF-8 JSON', { cause: error });
  }
}

/** Registers the agent as a NATS service: one endpoint per contract operation on the node's subjects. */
export async function serveOperations(options: ServeOptions): Promise<Service> {
  const { nc, node, handlers, logger } = options;
  const service = await new Svcm(nc).add({
    name: AGENT_SERVICE_NAME,
    version: options.version,
    description: `virtbus agent of node ${node}`,
    metadata: { node, api: 'v1' },
  });
  const around = options.around ?? (<T>(_context: CallContext, run: () => Promise<T>) => run());

  for (const operation of OperationNames) {
    const spec = Operations[operation];
    service.addEndpoint(operation.replaceAll('.', '_'), {
      subject: Subjects.request(node, spec.access, operation),
      metadata: { operation, access: spec.access },
      handler: (error, msg) => {
        if (error) {
          logger.error({ err: error, operation }, 'service endpoint failed');
          return;
        }
        const started = performance.now();
        const maxReplyBytes = nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
        const context: CallContext = { operation, headers: { get: (name) => msg.headers?.get(name) ?? '' }, maxReplyBytes };
        const fail = (body: ErrorBody, failure: unknown) => {
          if (body.code === 'INTERNAL' || body.code === 'REPLY_TOO_LARGE') logger.error({ err: failure, operation }, 'request failed');
          replyError(msg, body);
          options.onResult?.(operation, body.code, performance.now() - started);
        };
        const key = spec.access === 'rw' && options.idempotency && !NOT_REPLAYABLE.has(operation) ? (msg.headers?.get(IDEMPOTENCY_HEADER) ?? '') : '';
        void around(context, async () => {
          const payload = decode(msg);
          const execute = async (): Promise<unknown> => {
            const request = validators[operation].parse(payload);
            const handler = handlers[operation] as (request: unknown, context: CallContext) => Promise<unknown>;
            return handler(request, context);
          };
          if (!key || !options.idempotency) return execute();
          if (!isIdempotencyKey(key)) throw new VirtError('INVALID_ARG', `${IDEMPOTENCY_HEADER} must be 1 to 255 visible ASCII characters`);
          const { outcome } = await options.idempotency.run(key, operation, fingerprintOf(operation, payload), execute);
          if ('error' in outcome) throw VirtError.fromBody(outcome.error);
          return outcome.result;
        })
          .then(
            (result) => {
              const refused = replyResult(msg, operation, result, maxReplyBytes);
              if (refused) fail(refused, refused.message);
              else options.onResult?.(operation, 'OK', performance.now() - started);
            },
            (failure: unknown) => fail(toErrorBody(failure), failure),
          )
          // nothing a reply does may end the agent: the caller then times out, the failure is logged
          .catch((error: unknown) => logger.error({ err: error, operation }, 'could not answer a request'));
      },
    });
  }
  // a caller on another connection may call as soon as this resolves: the server must hold the subscriptions by then
  await nc.flush();
  return service;
}

import { RequestError, TimeoutError, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { ErrorBody, VirtError, compileValidator, type ErrorCode } from '@virtbus/api-contract';

const validErrorBody = compileValidator(ErrorBody);
const decoder = new TextDecoder();

/** The reply envelope of a result. */
export function resultEnvelope(result: unknown): string {
  return JSON.stringify({ result });
}

/** The contract's error body of anything thrown; an error that is not a VirtError becomes `fallback`. */
export function errorBodyOf(error: unknown, fallback: ErrorCode = 'INTERNAL'): ErrorBody {
  return (error instanceof VirtError ? error : new VirtError(fallback, (error as Error)?.message ?? String(error))).toBody();
}

/** The reply envelope of an error. */
export function errorEnvelope(error: unknown, fallback: ErrorCode = 'INTERNAL'): string {
  return JSON.stringify({ error: errorBodyOf(error, fallback) });
}

/** The result of a reply envelope, or the VirtError it carries; `from` names the sender in messages. */
export function decodeReply(data: Uint8Array, from = 'agent'): unknown {
  let body: unknown;
  try {
    body = JSON.parse(decoder.decode(data));
  } catch (error) {
    throw new VirtError('INTERNAL', `${from} sent a reply that is not JSON`, { cause: error });
  }
  if (body && typeof body === 'object') {
    if ('result' in body) return (body as { result: unknown }).result;
    if ('error' in body) {
      const failure = (body as { error: unknown }).error;
      if (!validErrorBody.check(failure)) throw new VirtError('INTERNAL', `${from} sent a malformed error`);
      throw VirtError.fromBody(failure);
    }
  }
  throw new VirtError('INTERNAL', `${from} sent a reply without result or error`);
}

export interface RequestOptions {
  timeoutMs: number;
  headers?: MsgHdrs;
  /** Names the callee in error messages, e.g. `node n1 (domain.get)`. */
  callee: string;
  /** The error when nobody listens on the subject (AGENT_UNREACHABLE by default). */
  noResponders?: (error: RequestError) => VirtError | Promise<VirtError>;
}

/**
 * One request/reply call on the bus: JSON in, the envelope's result out. Nobody listening is AGENT_UNREACHABLE (or what
 * `noResponders` says), no answer in time OPERATION_TIMEOUT, any other transport failure AGENT_UNREACHABLE.
 */
export async function request(nc: NatsConnection, subject: string, body: unknown, options: RequestOptions): Promise<unknown> {
  let reply: Msg;
  try {
    reply = await nc.request(subject, JSON.stringify(body), { timeout: options.timeoutMs, ...(options.headers ? { headers: options.headers } : {}) });
  } catch (error) {
    if (error instanceof RequestError && error.isNoResponders()) {
      throw options.noResponders ? await options.noResponders(error) : new VirtError('AGENT_UNREACHABLE', `${options.callee} has no responder`, { cause: error });
    }
    if (error instanceof TimeoutError) throw new VirtError('OPERATION_TIMEOUT', `${options.callee} did not answer within ${options.timeoutMs} ms`, { cause: error });
    throw new VirtError('AGENT_UNREACHABLE', `request to ${options.callee} failed: ${(error as Error).message}`, { cause: error });
  }
  return decodeReply(reply.data, options.callee);
}

export interface ServeHooks {
  /** Told of each answered request (logging). */
  onResult?: (msg: Msg, result: unknown) => void;
  /** Told of each failed request with the body sent back. */
  onError?: (msg: Msg, body: ErrorBody, error: unknown) => void;
}

/** Answers every request on `subject` with the envelope of `handler`'s result or error (errors other than VirtErrors are INTERNAL). */
export function serve(nc: NatsConnection, subject: string, handler: (msg: Msg) => Promise<unknown>, hooks: ServeHooks = {}): Subscription {
  return nc.subscribe(subject, {
    callback: (error, msg) => {
      if (error) return;
      void handler(msg).then(
        (result) => {
          hooks.onResult?.(msg, result);
          msg.respond(resultEnvelope(result));
        },
        (failure: unknown) => {
          const body = errorBodyOf(failure);
          hooks.onError?.(msg, body, failure);
          msg.respond(JSON.stringify({ error: body }));
        },
      );
    },
  });
}

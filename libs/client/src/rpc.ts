import {
  ClosedConnectionError,
  createInbox,
  NoRespondersError,
  RequestError,
  TimeoutError,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from '@nats-io/transport-node';
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

interface Waiting {
  resolve: (msg: Msg) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
  subject: string;
}

/**
 * Request/reply over one wildcard inbox subscription per connection, as nats.js' own request does, without what that
 * costs per call: its RequestOne builds an Error (a stack capture) for every answered call, ~10% of the gateway's CPU
 * at one call in flight (tools/bench/gateway-profile.ts). Errors are nats.js' own: TimeoutError, and RequestError
 * caused by NoRespondersError.
 */
class ReplyInbox {
  private readonly prefix: string;
  private readonly waiting = new Map<string, Waiting>();
  private readonly sub: Subscription;
  private next = 0;

  constructor(private readonly nc: NatsConnection) {
    // the connection's own inbox prefix: bus permissions allow a client replies under it only
    this.prefix = `${createInbox((nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix)}.`;
    this.sub = nc.subscribe(`${this.prefix}*`, { callback: (error, msg) => (error ? this.failAll(error) : this.answer(msg)) });
    void this.sub.closed.then(
      () => this.failAll(new ClosedConnectionError()),
      (error: unknown) => this.failAll(error as Error),
    );
  }

  get closed(): boolean {
    return this.sub.isClosed();
  }

  request(subject: string, data: string, timeoutMs: number, headers: MsgHdrs | undefined): Promise<Msg> {
    const token = (this.next++).toString(36);
    return new Promise<Msg>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(token);
        reject(new TimeoutError());
      }, timeoutMs);
      this.waiting.set(token, { resolve, reject, timer, subject });
      try {
        this.nc.publish(subject, data, { reply: `${this.prefix}${token}`, ...(headers ? { headers } : {}) });
      } catch (error) {
        clearTimeout(timer);
        this.waiting.delete(token);
        reject(error as Error);
      }
    });
  }

  private answer(msg: Msg): void {
    const token = msg.subject.slice(this.prefix.length);
    const waiting = this.waiting.get(token);
    if (!waiting) return;
    this.waiting.delete(token);
    clearTimeout(waiting.timer);
    // the server's status message when nobody subscribes to the subject
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      waiting.reject(new RequestError(`no responders: '${waiting.subject}'`, { cause: new NoRespondersError(waiting.subject) }));
    } else waiting.resolve(msg);
  }

  private failAll(error: Error): void {
    for (const [token, waiting] of this.waiting) {
      this.waiting.delete(token);
      clearTimeout(waiting.timer);
      waiting.reject(error);
    }
  }
}

const inboxes = new WeakMap<NatsConnection, ReplyInbox>();

function replyInbox(nc: NatsConnection): ReplyInbox {
  let inbox = inboxes.get(nc);
  if (!inbox || inbox.closed) {
    inbox = new ReplyInbox(nc);
    inboxes.set(nc, inbox);
  }
  return inbox;
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
    reply = await replyInbox(nc).request(subject, JSON.stringify(body), options.timeoutMs, options.headers);
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

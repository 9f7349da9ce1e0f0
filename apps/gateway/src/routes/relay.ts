import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Msg, Subscription } from '@nats-io/transport-node';
import { ConsoleHeaders, isActive, VirtError, type ErrorBody } from '@virtbus/api-contract';
import { alreadyInHistory } from '@virtbus/client';
import { toErrorBody } from '../plugins/errors.js';
import { releaseLiveStream } from '../plugins/limits.js';
import { auditRecordOf } from '../plugins/security.js';

type RawData = Buffer | ArrayBuffer | Buffer[];

/** The part of a `ws` WebSocket a relay uses (ws ships no types here). */
export interface RelaySocket {
  readonly readyState: number;
  readonly OPEN: number;
  readonly CONNECTING: number;
  send(data: Uint8Array, options: { binary: boolean }, done?: (error?: Error) => void): void;
  close(code: number, reason: string): void;
  on(event: 'message', listener: (data: RawData) => void): void;
  on(event: 'close', listener: () => void): void;
}

/** Bytes per write call: 64 KiB of bytes is 87 384 base64 characters, the contract's limit. */
export const WRITE_CHUNK_BYTES = 65_536;
/** WebSocket close codes 4000-4999 are the application's: 4000 + the HTTP status of the error. */
export const closeCodeOf = (error: ErrorBody): number => 4000 + error.status;
const GOING_AWAY = 1001;
/** The session ended (domain stopped…): a normal close whose reason says why. */
const NORMAL_CLOSURE = 1000;
/** Closes a relay idle in both directions: 4000 + 408 (Request Timeout), reason `IDLE_TIMEOUT: …`. */
export const IDLE_CLOSE_CODE = 4408;
/** A flow-controlled relay tells the agent it is alive at least this often (the agent drops silent viewers). */
export const KEEPALIVE_MS = 30_000;

/** What one agent-side session offers: attach, bytes in, acknowledgements of bytes out, detach. */
export interface RelaySession {
  /** Audited under this action (absent: not audited, e.g. a read-only console). */
  readonly auditAction?: string;
  /** Input from the socket is dropped. */
  readonly readOnly: boolean;
  /** What the idle close says carried no traffic. */
  readonly what: string;
  attach(): Promise<{ session: string; subject: string; history?: Buffer; windowBytes?: number }>;
  /** The output subject when it is known before the attach: subscribed first, so output sent right after the attach answer is not lost. */
  outputSubject?(): Promise<string>;
  write(session: string, bytes: Buffer): Promise<unknown>;
  /** Flow control: the bytes the socket took so far; the first call (0) starts the agent's output. */
  ack?(session: string, consumed: number): Promise<unknown>;
  detach(session: string): Promise<unknown>;
}

function shortReason(text: string): string {
  // A close frame's reason is at most 123 bytes.
  return Buffer.from(text).subarray(0, 123).toString().replace(/\uFFFD$/, '');
}

function toBuffer(data: RawData): Buffer {
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.isBuffer(data) ? data : Buffer.from(data);
}

/**
 * Relays one WebSocket to an agent session over the bus (serial console, VNC): output from the session's core subject
 * (an End header closes with 1000 and its reason), input through `write` in order, errors as 4000 + status, the idle
 * timeout, gateway shutdown, and the domain stopping before the subscription was in place.
 */
export function relayWebSocket(app: FastifyInstance, socket: RelaySocket, request: FastifyRequest, relay: RelaySession, idleTimeoutMs: number): void {
  const { node, id } = request.params as { node: string; id: string };
  let session = '';
  let subscription: Subscription | undefined;
  let closed = false;
  let writes = Promise.resolve();
  const pending: Buffer[] = [];
  let consumed = 0;
  let acked = 0;
  let ackThreshold = Number.POSITIVE_INFINITY;
  let acking = false;

  let audited = false;
  const audit = (status: number, code?: ErrorBody['code']): void => {
    if (audited || relay.auditAction === undefined) return;
    audited = true;
    void app.auditLog.write(auditRecordOf(request, relay.auditAction, status, code));
  };

  const fail = (error: unknown): void => {
    const body = toErrorBody(error);
    audit(body.status, body.code);
    if (body.code === 'INTERNAL') request.log.error({ err: error }, `${relay.what} failed`);
    if (socket.readyState === socket.OPEN || socket.readyState === socket.CONNECTING) socket.close(closeCodeOf(body), shortReason(`${body.code}: ${body.message}`));
  };

  const end = (why: string): void => {
    if (socket.readyState === socket.OPEN || socket.readyState === socket.CONNECTING) socket.close(NORMAL_CLOSURE, shortReason(why));
  };

  const write = (bytes: Buffer): void => {
    writes = writes
      .then(async () => {
        for (let offset = 0; offset < bytes.length && !closed; offset += WRITE_CHUNK_BYTES) {
          await relay.write(session, bytes.subarray(offset, offset + WRITE_CHUNK_BYTES));
        }
      })
      .catch(fail);
  };

  /** One acknowledgement in flight at a time; `force` sends even below the threshold (start, keep-alive). */
  const ack = (force = false): void => {
    if (!relay.ack || !session || closed || acking || (!force && consumed - acked < ackThreshold)) return;
    acking = true;
    const upTo = consumed;
    relay
      .ack(session, upTo)
      .then(() => {
        acked = upTo;
        acking = false;
        ack();
      })
      .catch(fail);
  };

  const unregister = app.liveStreams.add({ end: () => socket.close(GOING_AWAY, 'gateway shutting down') });
  let idleTimer: NodeJS.Timeout | undefined;
  const touch = (): void => {
    if (idleTimeoutMs <= 0 || closed) return;
    if (idleTimer) return void idleTimer.refresh();
    idleTimer = setTimeout(() => {
      const minutes = idleTimeoutMs >= 60_000 ? `${Math.round(idleTimeoutMs / 60_000)} min` : `${Math.round(idleTimeoutMs / 1000)} s`;
      if (socket.readyState === socket.OPEN) socket.close(IDLE_CLOSE_CODE, `IDLE_TIMEOUT: no ${relay.what} traffic for ${minutes}`);
    }, idleTimeoutMs);
  };
  touch();
  const keepAlive = relay.ack ? setInterval(() => ack(true), KEEPALIVE_MS) : undefined;

  // Handlers go on at once: input sent before the attach reply waits in `pending`.
  socket.on('message', (data: RawData) => {
    touch();
    if (relay.readOnly) return;
    const bytes = toBuffer(data);
    if (session) write(bytes);
    else pending.push(bytes);
  });
  socket.on('close', () => {
    closed = true;
    clearTimeout(idleTimer);
    clearInterval(keepAlive);
    releaseLiveStream(request);
    unregister();
    void subscription?.unsubscribe();
    if (session) void relay.detach(session).catch(() => undefined);
  });

  const forward = (message: Msg): void => {
    const ended = message.headers?.get(ConsoleHeaders.End);
    if (ended) return end(ended);
    if (socket.readyState !== socket.OPEN) return;
    touch();
    const length = message.data.length;
    // the send callback runs once ws handed the bytes to the kernel: the browser's pace becomes the agent's
    socket.send(message.data, { binary: true }, () => {
      consumed += length;
      ack();
    });
  };
  // output that arrives before the attach answer waits here (set while subscribed ahead of the attach)
  let early: Msg[] | undefined;
  const subscribe = async (subject: string): Promise<void> => {
    const nc = await app.agents.connection();
    subscription = nc.subscribe(subject, {
      callback: (error, message) => {
        if (error) return fail(new VirtError('AGENT_UNREACHABLE', `${relay.what} subscription failed: ${error.message}`, { cause: error }));
        if (early) early.push(message);
        else forward(message);
      },
    });
    // the socket closed while the subscription was made: its close handler has run already
    if (closed) void subscription.unsubscribe();
  };

  void (async () => {
    // not known ahead (the lookup failed): subscribed after the attach as before; the attach reports a missing domain itself
    const ahead = await relay.outputSubject?.().catch((error: unknown) => void request.log.debug({ err: error }, `${relay.what}: output subscribed after the attach`));
    if (ahead) {
      early = [];
      await subscribe(ahead);
    }
    const attachment = await relay.attach();
    session = attachment.session;
    audit(101);
    if (closed) {
      if (session) await relay.detach(session).catch(() => undefined);
      return;
    }
    if (attachment.windowBytes !== undefined) ackThreshold = Math.max(1, Math.floor(attachment.windowBytes / 4));
    if (ahead !== attachment.subject) {
      void subscription?.unsubscribe();
      early = undefined;
      await subscribe(attachment.subject);
    }
    const history = attachment.history ?? Buffer.alloc(0);
    if (history.length > 0) socket.send(history, { binary: true });
    if (early) {
      const held = early;
      early = undefined;
      for (const message of held.slice(alreadyInHistory(history, held))) forward(message);
    }
    for (const bytes of pending.splice(0)) write(bytes);
    ack(true);
    // a stop between the attach and the subscription published its end before anyone listened
    const domain = await app.agents.call(node, 'domain.get', { id }).catch((error: unknown) => {
      request.log.debug({ err: error }, `${relay.what}: domain state not checked; the end message still closes the session`);
      return undefined;
    });
    if (domain && !isActive(domain.state)) end(`domain ${domain.name} is ${domain.state}`);
  })().catch(fail);
}

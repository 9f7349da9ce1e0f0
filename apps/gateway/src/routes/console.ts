import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Subscription } from '@nats-io/transport-node';
import Type from 'typebox';
import { ConsoleHeaders, isActive, VirtError, type ErrorBody } from '@virtbus/api-contract';
import { toErrorBody } from '../plugins/errors.js';
import { releaseLiveStream } from '../plugins/limits.js';
import { Tags } from '../plugins/openapi.js';
import { auditRecordOf } from '../plugins/security.js';
import { DomainCallCodes, DomainParams, errorResponses } from '../schemas.js';

export const ConsoleQuery = Type.Object(
  {
    mode: Type.Optional(Type.Enum(['rw', 'ro'], { default: 'rw', description: 'rw: become the writer; ro: watch only' })),
    force: Type.Optional(Type.Boolean({ description: 'rw: take the console from the current writer' })),
  },
  { additionalProperties: false },
);

type RawData = Buffer | ArrayBuffer | Buffer[];

/** The part of a `ws` WebSocket the console uses (ws ships no types here). */
interface ConsoleSocket {
  readonly readyState: number;
  readonly OPEN: number;
  readonly CONNECTING: number;
  send(data: Uint8Array, options: { binary: boolean }): void;
  close(code: number, reason: string): void;
  on(event: 'message', listener: (data: RawData) => void): void;
  on(event: 'close', listener: () => void): void;
}

/** Keystrokes per console.write call: 64 KiB of bytes is 87 384 base64 characters, the contract's limit. */
const WRITE_CHUNK_BYTES = 65_536;
/** WebSocket close codes 4000-4999 are the application's: 4000 + the HTTP status of the error. */
export const closeCodeOf = (error: ErrorBody): number => 4000 + error.status;
const GOING_AWAY = 1001;
/** The domain stopped: a normal close whose reason says why (`domain web1 stopped (destroyed)`). */
const NORMAL_CLOSURE = 1000;
/** Closes a console idle in both directions: 4000 + 408 (Request Timeout), reason `IDLE_TIMEOUT: …`. */
export const IDLE_CLOSE_CODE = 4408;

export interface ConsoleRouteOptions {
  /** No traffic either way for this long closes the console (0 = never). */
  idleTimeoutMs?: number;
}

function closeReason(error: ErrorBody): string {
  // A close frame's reason is at most 123 bytes.
  return Buffer.from(`${error.code}: ${error.message}`).subarray(0, 123).toString().replace(/\uFFFD$/, '');
}

/** A close frame's reason is at most 123 bytes. */
function shortReason(text: string): string {
  return Buffer.from(text).subarray(0, 123).toString().replace(/\uFFFD$/, '');
}

function toBuffer(data: RawData): Buffer {
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.isBuffer(data) ? data : Buffer.from(data);
}

export const consoleRoutes: FastifyPluginAsyncTypebox<ConsoleRouteOptions> = async (app, options) => {
  const idleTimeoutMs = options.idleTimeoutMs ?? 0;
  app.route({
    method: 'GET',
    url: '/v1/nodes/:node/domains/:id/console',
    // console output can show what was typed (passwords): operator, like libvirt's read-write socket
    config: { permission: 'domain.console.attach', liveStream: 'console' },
    schema: {
      operationId: 'openConsole',
      tags: [Tags.Console],
      summary: 'Serial console over WebSocket',
      description:
        'Upgrade to a WebSocket. The server sends the output so far, then live output, as binary frames; binary or text frames ' +
        'from the client are keystrokes (mode rw only). Errors close the socket with code 4000 + HTTP status and the reason `CODE: message`. ' +
        'Only one writer at a time: attaching while another holds the console closes with 4409 unless force is set. ' +
        'When the domain stops (or is not running) the socket closes with 1000 and a reason saying so, e.g. `domain web1 stopped (destroyed)`. ' +
        'A console with no traffic either way for the idle timeout (15 min by default) closes with 4408 `IDLE_TIMEOUT: …`; ' +
        'past the per-caller or gateway cap of open consoles the upgrade is refused with 429 and Retry-After.',
      params: DomainParams,
      querystring: ConsoleQuery,
      response: {
        101: { description: 'Switching to the WebSocket protocol', type: 'null' },
        ...errorResponses(...DomainCallCodes),
      },
    },
    handler: async () => {
      throw new VirtError('INVALID_ARG', 'the console needs a WebSocket upgrade request');
    },
    wsHandler: (socket: ConsoleSocket, request) => {
      const { node, id } = request.params as { node: string; id: string };
      const { mode = 'rw', force } = request.query as { mode?: 'rw' | 'ro'; force?: boolean };
      let session = '';
      let subscription: Subscription | undefined;
      let closed = false;
      let writes = Promise.resolve();
      const pending: Buffer[] = [];

      let audited = false;
      const audit = (status: number, code?: ErrorBody['code']): void => {
        if (audited || mode === 'ro') return;
        audited = true;
        void app.auditLog.write(auditRecordOf(request, 'domain.console.attach', status, code));
      };

      const fail = (error: unknown): void => {
        const body = toErrorBody(error);
        audit(body.status, body.code);
        if (body.code === 'INTERNAL') request.log.error({ err: error }, 'console failed');
        if (socket.readyState === socket.OPEN || socket.readyState === socket.CONNECTING) socket.close(closeCodeOf(body), closeReason(body));
      };

      const end = (why: string): void => {
        if (socket.readyState === socket.OPEN || socket.readyState === socket.CONNECTING) socket.close(NORMAL_CLOSURE, shortReason(why));
      };

      const write = (bytes: Buffer): void => {
        writes = writes.then(async () => {
          for (let offset = 0; offset < bytes.length && !closed; offset += WRITE_CHUNK_BYTES) {
            const data = bytes.subarray(offset, offset + WRITE_CHUNK_BYTES).toString('base64');
            await app.agents.call(node, 'domain.console.write', { id, session, data });
          }
        }).catch(fail);
      };

      const unregister = app.liveStreams.add({ end: () => socket.close(GOING_AWAY, 'gateway shutting down') });
      let idleTimer: NodeJS.Timeout | undefined;
      const touch = (): void => {
        if (idleTimeoutMs <= 0 || closed) return;
        if (idleTimer) return void idleTimer.refresh();
        idleTimer = setTimeout(() => {
          const minutes = idleTimeoutMs >= 60_000 ? `${Math.round(idleTimeoutMs / 60_000)} min` : `${Math.round(idleTimeoutMs / 1000)} s`;
          if (socket.readyState === socket.OPEN) socket.close(IDLE_CLOSE_CODE, `IDLE_TIMEOUT: no console traffic for ${minutes}`);
        }, idleTimeoutMs);
      };
      touch();

      // Handlers go on at once: keystrokes typed before the attach reply wait in `pending`.
      socket.on('message', (data: RawData) => {
        touch();
        if (mode === 'ro') return;
        const bytes = toBuffer(data);
        if (session) write(bytes);
        else pending.push(bytes);
      });
      socket.on('close', () => {
        closed = true;
        clearTimeout(idleTimer);
        releaseLiveStream(request);
        unregister();
        void subscription?.unsubscribe();
        if (session) void app.agents.call(node, 'domain.console.detach', { id, session }).catch(() => undefined);
      });

      void (async () => {
        const attachment =
          mode === 'ro'
            ? await app.agents.call(node, 'domain.console.read', { id })
            : await app.agents.call(node, 'domain.console.attach', force === undefined ? { id } : { id, force });
        session = attachment.session;
        audit(101);
        if (closed) {
          if (session) await app.agents.call(node, 'domain.console.detach', { id, session }).catch(() => undefined);
          return;
        }
        const nc = await app.agents.connection();
        subscription = nc.subscribe(attachment.subject, {
          callback: (error, message) => {
            if (error) return fail(new VirtError('AGENT_UNREACHABLE', `console output subscription failed: ${error.message}`, { cause: error }));
            const ended = message.headers?.get(ConsoleHeaders.End);
            if (ended) return end(ended);
            if (socket.readyState === socket.OPEN) {
              touch();
              socket.send(message.data, { binary: true });
            }
          },
        });
        const history = Buffer.from(attachment.history, 'base64');
        if (history.length > 0) socket.send(history, { binary: true });
        for (const bytes of pending.splice(0)) write(bytes);
        // a stop between the attach and the subscription published its end before anyone listened
        const domain = await app.agents.call(node, 'domain.get', { id }).catch((error: unknown) => {
          request.log.debug({ err: error }, 'console: domain state not checked; the end message still closes the session');
          return undefined;
        });
        if (domain && !isActive(domain.state)) end(`domain ${domain.name} is ${domain.state}`);
      })().catch(fail);
    },
  });
};

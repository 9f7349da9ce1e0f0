import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type, { type TSchema } from 'typebox';
import { httpPath, Operations, Subjects, VirtError } from '@virtbus/api-contract';
import { Tags } from '../plugins/openapi.js';
import { bytesRouteOptions, DomainCallCodes, DomainParams, errorResponses, handRouteDocument } from '../schemas.js';
import { relayWebSocket, type RelaySocket } from './relay.js';

export { closeCodeOf, IDLE_CLOSE_CODE } from './relay.js';

export const ConsoleQuery = Type.Object(
  {
    mode: Type.Optional(Type.Enum(['rw', 'ro'], { default: 'rw', description: 'rw: become the writer; ro: watch only' })),
    force: Type.Optional(Type.Boolean({ description: 'rw: take the console from the current writer' })),
  },
  { additionalProperties: false },
);

export const GraphicsQuery = Type.Object(
  {
    exclusive: Type.Optional(Type.Boolean({ description: 'Be the only viewer' })),
    force: Type.Optional(Type.Boolean({ description: 'Close the viewers in the way' })),
  },
  { additionalProperties: false },
);

export interface ConsoleRouteOptions {
  /** No traffic either way for this long closes the console (0 = never). */
  idleTimeoutMs?: number;
}

/** The route options of a WebSocket on one domain: its document with the 101 and the domain's errors, and a plain GET refused. */
function domainWebSocket(what: string, querystring: TSchema, document: { operationId: string; tags: string[]; summary: string; description: string }) {
  return {
    schema: {
      ...document,
      params: DomainParams,
      querystring,
      response: {
        101: { description: 'Switching to the WebSocket protocol', type: 'null' },
        ...errorResponses(...DomainCallCodes),
      },
    },
    handler: async () => {
      throw new VirtError('INVALID_ARG', `the ${what} needs a WebSocket upgrade request`);
    },
  };
}

export const consoleRoutes: FastifyPluginAsyncTypebox<ConsoleRouteOptions> = async (app, options) => {
  const idleTimeoutMs = options.idleTimeoutMs ?? 0;
  app.route({
    method: 'GET',
    url: '/v1/nodes/:node/domains/:id/console',
    // console output can show what was typed (passwords): operator, like libvirt's read-write socket
    config: { permission: 'domain.console.attach', liveStream: 'console' },
    ...domainWebSocket('console', ConsoleQuery, {
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
    }),
    wsHandler: (socket: RelaySocket, request) => {
      const { node, id } = request.params as { node: string; id: string };
      const { mode = 'rw', force } = request.query as { mode?: 'rw' | 'ro'; force?: boolean };
      relayWebSocket(
        app,
        socket,
        request,
        {
          // watching is not audited, taking the keyboard is
          ...(mode === 'rw' ? { auditAction: 'domain.console.attach' } : {}),
          readOnly: mode === 'ro',
          what: 'console',
          attach: async () => {
            const attachment =
              mode === 'ro' ? await app.agents.call(node, 'domain.console.read', { id }) : await app.agents.call(node, 'domain.console.attach', force === undefined ? { id } : { id, force });
            return { session: attachment.session, subject: attachment.subject, history: Buffer.from(attachment.history, 'base64') };
          },
          outputSubject: async () => Subjects.consoleOutput(node, (await app.agents.call(node, 'domain.get', { id })).uuid),
          write: (session, bytes) => app.agents.call(node, 'domain.console.write', { id, session, data: bytes.toString('base64') }),
          detach: (session) => app.agents.call(node, 'domain.console.detach', { id, session }),
        },
        idleTimeoutMs,
      );
    },
  });

  // the hand routes' path, operationId and tag come from their table entries (served: 'hand')
  const vnc = Operations['domain.graphics.attach'];
  app.route({
    method: 'GET',
    url: httpPath(vnc.http),
    // the screen shows what the serial console shows, and takes the keyboard
    config: { permission: 'domain.graphics.attach', liveStream: 'console' },
    ...domainWebSocket('VNC console', GraphicsQuery, {
      ...handRouteDocument(vnc, 'Graphical console (VNC/RFB) over WebSocket'),
      description:
        `${vnc.http.description} Each viewer gets its own connection to the domain's VNC server, which lives on a unix socket on the node. ` +
        'Errors close the socket with code 4000 + HTTP status and the reason `CODE: message`; `exclusive=true` is refused with 4409 while others watch ' +
        '(and a viewer is refused while an exclusive one watches) unless `force=true`, which closes them. When the domain stops the socket closes with 1000 and the reason. ' +
        'Idle timeout and the cap of open consoles as for the serial console.',
    }),
    wsHandler: (socket: RelaySocket, request) => {
      const { node, id } = request.params as { node: string; id: string };
      const { exclusive, force } = request.query as { exclusive?: boolean; force?: boolean };
      relayWebSocket(
        app,
        socket,
        request,
        {
          auditAction: 'domain.graphics.attach',
          readOnly: false,
          what: 'graphics',
          attach: () => app.agents.call(node, 'domain.graphics.attach', { id, ...(exclusive !== undefined ? { exclusive } : {}), ...(force !== undefined ? { force } : {}) }),
          write: (session, bytes) => app.agents.call(node, 'domain.graphics.write', { id, session, data: bytes.toString('base64') }),
          ack: (session, consumed) => app.agents.call(node, 'domain.graphics.write', { id, session, ack: consumed }),
          detach: (session) => app.agents.call(node, 'domain.graphics.detach', { id, session }),
        },
        idleTimeoutMs,
      );
    },
  });

  const screenshot = Operations['domain.screenshot'];
  app.get(
    httpPath(screenshot.http),
    bytesRouteOptions('domain.screenshot', screenshot, DomainParams, { description: 'The screen', contentType: 'image/png' }, DomainCallCodes),
    async (request, reply) => {
      const { node, id } = request.params;
      const shot = await app.agents.call(node, 'domain.screenshot', { id });
      reply.header('content-type', 'image/png');
      reply.header('cache-control', 'no-store');
      return reply.send(Buffer.from(shot.data, 'base64') as never);
    },
  );
};

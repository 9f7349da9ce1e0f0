import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { jetstream, jetstreamManager, type ConsumerMessages } from '@nats-io/jetstream';
import { EVENTS_STREAM, LifecycleType, NodeName, Subjects, Uuid, VirtError } from '@virtbus/api-contract';
import { canSeeNode } from '@virtbus/security';
import { Tags } from '../plugins/openapi.js';
import { errorResponses, ref } from '../schemas.js';

export const HEARTBEAT_MS = 15_000;
/** The largest resume point: the next sequence must stay an exact JSON integer for JetStream. */
const MAX_SEQUENCE = Number.MAX_SAFE_INTEGER - 1;

export const EventsQuery = Type.Object(
  {
    node: Type.Optional(NodeName),
    domain: Type.Optional(Type.String({ ...Uuid, description: 'Domain uuid (events are filtered by uuid, not by name)' })),
    type: Type.Optional(LifecycleType),
    kind: Type.Optional(
      Type.Enum(['domain', 'pool', 'network', 'snapshot', 'operation', 'all'], {
        default: 'domain',
        description: 'Which events: domain lifecycle (default), storage pool or virtual network lifecycle, domain snapshots, async operations, or every family on the bus',
      }),
    ),
    since: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_SEQUENCE, description: 'Stream sequence to resume after (the last SSE id seen)' })),
  },
  { additionalProperties: false },
);

const SEQUENCE = /^[0-9]{1,15}$/;

/** Domain events keep the `lifecycle` name they always had; other families are named by their `kind`. */
function sseEventName(event: unknown): string {
  const kind = (event as { kind?: unknown }).kind;
  if (kind === 'domain.lifecycle' || typeof kind !== 'string' || !/^[a-z][a-z.]{0,63}$/.test(kind)) return 'lifecycle';
  return kind;
}

/** The resume point: `since` wins over the Last-Event-ID header that browsers send on reconnect. */
function resumeAfter(since: number | undefined, lastEventId: string | string[] | undefined): number | undefined {
  if (since !== undefined) return since;
  if (lastEventId === undefined) return undefined;
  const value = Array.isArray(lastEventId) ? lastEventId[0] : lastEventId;
  if (value === undefined || !SEQUENCE.test(value.trim())) throw new VirtError('INVALID_ARG', 'Last-Event-ID must be a stream sequence number');
  return Number(value.trim());
}

export interface EventRouteOptions {
  heartbeatMs?: number;
}

export const eventRoutes: FastifyPluginAsyncTypebox<EventRouteOptions> = async (app, options) => {
  const heartbeatMs = options.heartbeatMs ?? HEARTBEAT_MS;
  app.get(
    '/v1/events',
    {
      config: { permission: 'events', liveStream: 'events' },
      // HEAD is answered below at once instead of opening a stream no body will ever be read from
      exposeHeadRoute: false,
      schema: {
        operationId: 'streamEvents',
        tags: [Tags.Events],
        summary: 'Lifecycle events as Server-Sent Events',
        description:
          'Each message has `id:` the stream sequence, `event:` the family (`lifecycle` for domain events, else the event `kind`, ' +
          'e.g. `pool.lifecycle`, `operation`) and `data:` the event as JSON (LifecycleEvent for domains). ' +
          'Resume with `since` or the Last-Event-ID header; without either only new events are sent. A comment line is sent every 15 s.',
        querystring: EventsQuery,
        response: {
          200: { description: 'An endless text/event-stream', content: { 'text/event-stream': { schema: ref('LifecycleEvent') } } },
          ...errorResponses('AGENT_UNREACHABLE'),
        },
      },
    },
    async (request, reply) => {
      const { node, domain, type, since, kind = 'domain' } = request.query;
      if (node !== undefined && !canSeeNode(request.identity, node)) throw new VirtError('FORBIDDEN', `${request.identity?.name ?? 'caller'} may not use node ${node}`);
      if (kind !== 'domain' && (domain !== undefined || type !== undefined)) throw new VirtError('INVALID_ARG', 'domain and type filter domain events only (kind=domain)');
      const after = resumeAfter(since, request.headers['last-event-id']);
      const filter = kind === 'domain' ? Subjects.domainEventFilter({ node, uuid: domain, type }) : Subjects.eventKindFilter({ node, kind });
      const nc = await app.agents.connection();
      const jsm = await jetstreamManager(nc);
      try {
        await jsm.streams.info(EVENTS_STREAM);
      } catch (error) {
        throw new VirtError('AGENT_UNREACHABLE', `the event stream ${EVENTS_STREAM} does not exist yet: no agent has started`, { cause: error });
      }
      const consumer = await jetstream(nc).consumers.get(EVENTS_STREAM, {
        filter_subjects: filter,
        ...(after === undefined ? { deliver_policy: 'new' as const } : { deliver_policy: 'by_start_sequence' as const, opt_start_seq: after + 1 }),
      });
      const messages: ConsumerMessages = await consumer.consume();

      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write(': events\n\n');

      let ended = false;
      const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), heartbeatMs);
      const end = async (): Promise<void> => {
        if (ended) return;
        ended = true;
        clearInterval(heartbeat);
        unregister();
        await messages.close().catch(() => undefined);
        await consumer.delete().catch(() => undefined);
        if (!res.writableEnded) res.end();
      };
      const unregister = app.liveStreams.add({ end });
      res.on('close', () => void end());

      void (async () => {
        for await (const message of messages) {
          if (ended) break;
          let event: unknown;
          try {
            event = message.json();
          } catch {
            request.log.warn({ seq: message.seq, subject: message.subject }, 'skipping an event that is not JSON');
            continue;
          }
          // callers limited to some nodes get only their nodes' events
          if (!canSeeNode(request.identity, (event as { node?: unknown }).node as string)) continue;
          res.write(`id: ${message.seq}\nevent: ${sseEventName(event)}\ndata: ${JSON.stringify(event)}\n\n`);
        }
      })()
        .catch((error: unknown) => request.log.warn({ err: error }, 'event stream failed'))
        .finally(() => void end());
    },
  );
  app.head('/v1/events', { config: { permission: 'events' }, schema: { hide: true, querystring: EventsQuery } }, async (_request, reply) =>
    reply.code(200).header('content-type', 'text/event-stream; charset=utf-8').header('cache-control', 'no-cache, no-transform').send(),
  );
};

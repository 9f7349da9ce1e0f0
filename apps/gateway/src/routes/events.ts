import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type, { type TSchema } from 'typebox';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstream, jetstreamManager, type Consumer, type ConsumerMessages } from '@nats-io/jetstream';
import { EVENTS_STREAM, LifecycleType, NodeName, SSE_ERROR_EVENT, SseEventFamilies, Subjects, Uuid, VirtError } from '@virtbus/api-contract';
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
      Type.Enum(['domain', 'pool', 'network', 'snapshot', 'operation', 'graphics', 'domainevent', 'all'], {
        default: 'domain',
        description:
          'Which events: domain lifecycle (default), storage pool or virtual network lifecycle, domain snapshots, async operations, graphics viewers, ' +
          "domain events beyond the lifecycle (domainevent: `domain.event` messages, DomainEvent with libvirt's event name and id: REBOOT, WATCHDOG, IO_ERROR…), or every family on the bus",
      }),
    ),
    since: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_SEQUENCE, description: 'Stream sequence to resume after (the last SSE id seen)' })),
  },
  { additionalProperties: false },
);

const SEQUENCE = /^[0-9]{1,15}$/;

const titleOf = (schema: TSchema): string => (schema as { title?: string }).title ?? '';
/** The payloads are shared components named by their title (schemas.ts). */
const componentRef = (schema: TSchema) => ({ $ref: `#/components/schemas/${titleOf(schema)}` });
/** Each SSE `event:` name, the `?kind=` values that deliver it and its payload, for the API document. */
const sseEventsDoc = {
  ...Object.fromEntries(
    Object.entries(SseEventFamilies).map(([kind, family]) => [family.event, { kinds: [kind, 'all'], payload: componentRef(family.payload) }]),
  ),
  [SSE_ERROR_EVENT]: { kinds: [...Object.keys(SseEventFamilies), 'all'], payload: { $ref: '#/components/schemas/SseErrorEvent' } },
};
const sseEventsText = Object.entries(SseEventFamilies)
  .map(([kind, family]) => `\`${family.event}\` (kind=${kind}: ${titleOf(family.payload)})`)
  .join(', ');

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
  /** How long an SSE consumer may stay silent with events pending before it is replaced (default 5 s). */
  stallCheckMs?: number;
  /** How long a lost consumer is retried before the stream ends with an `error` event (default 30 s). */
  resumeDeadlineMs?: number;
}

export const eventRoutes: FastifyPluginAsyncTypebox<EventRouteOptions> = async (app, options) => {
  const heartbeatMs = options.heartbeatMs ?? HEARTBEAT_MS;
  const stallCheckMs = options.stallCheckMs ?? 5000;
  const resumeDeadlineMs = options.resumeDeadlineMs ?? 30_000;
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
          'Resume with `since` or the Last-Event-ID header; without either only new events are sent. A comment line is sent every 15 s. ' +
          'A consumer lost with a NATS server is replaced after the last sent id; if that fails for 30 s the stream ends with `event: error` ' +
          '(data: the error body plus `resumeAfter`, the id to resume after).',
        querystring: EventsQuery,
        'x-sse-events': sseEventsDoc,
        response: {
          200: {
            description: `An endless text/event-stream. Event names and data: ${sseEventsText}; kind=all sends them all; \`error\` (SseErrorEvent) ends a stream that could not be resumed. x-sse-events lists them.`,
            content: { 'text/event-stream': { schema: ref('LifecycleEvent') } },
          },
          ...errorResponses('AGENT_UNREACHABLE', 'BUS_UNAVAILABLE'),
        },
      },
    },
    async (request, reply) => {
      const { node, domain, type, since, kind = 'domain' } = request.query;
      if (node !== undefined && !canSeeNode(request.identity, node)) throw new VirtError('FORBIDDEN', `${request.identity?.name ?? 'caller'} may not use node ${node}`);
      if (kind !== 'domain' && (domain !== undefined || type !== undefined)) throw new VirtError('INVALID_ARG', 'domain and type filter domain events only (kind=domain)');
      const after = resumeAfter(since, request.headers['last-event-id']);
      const filter = kind === 'domain' ? Subjects.domainEventFilter({ node, uuid: domain, type }) : Subjects.eventKindFilter({ node, kind });
      const nc = await app.agents.liveConnection();
      // no API check here: it would fail (500) while the cluster elects a leader; the stream info below is retried, bounded
      const jsm = await jetstreamManager(nc, { checkAPI: false });
      const open = async (): Promise<{ consumer: Consumer; messages: ConsumerMessages }> => {
        const consumer = await jetstream(nc).consumers.get(EVENTS_STREAM, { filter_subjects: filter, deliver_policy: 'by_start_sequence', opt_start_seq: lastSeq + 1 });
        return { consumer, messages: await consumer.consume() };
      };
      let lastSeq = 0;
      // a stream that loses a server answers nothing (or 503) while it elects a leader: a new stream waits for that, bounded
      const openFirst = async (): Promise<{ consumer: Consumer; messages: ConsumerMessages }> => {
        const openUntil = Date.now() + Math.min(resumeDeadlineMs, 10_000);
        for (let attempt = 0; ; attempt++) {
          try {
            // without a resume point the stream starts after what the stream holds now (that is "only new events")
            lastSeq = after ?? (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
            if (after !== undefined) await jsm.streams.info(EVENTS_STREAM);
          } catch (error) {
            if (/stream not found/i.test(String((error as Error).message))) {
              throw new VirtError('AGENT_UNREACHABLE', `the event stream ${EVENTS_STREAM} does not exist yet: no agent has started`, { cause: error });
            }
            if (Date.now() > openUntil) throw new VirtError('BUS_UNAVAILABLE', `the event stream ${EVENTS_STREAM} does not answer: ${(error as Error).message}`, { cause: error });
            await sleep(Math.min(1000, 100 * 2 ** Math.min(attempt, 4)) * (0.5 + Math.random() / 2));
            continue;
          }
          try {
            return await open();
          } catch (error) {
            if (Date.now() > openUntil) throw new VirtError('BUS_UNAVAILABLE', `no consumer of the event stream could be made: ${(error as Error).message}`, { cause: error });
            request.log.warn({ err: error, attempt }, 'event consumer not made yet; trying again');
            await sleep(Math.min(1000, 100 * 2 ** Math.min(attempt, 4)) * (0.5 + Math.random() / 2));
          }
        }
      };
      let current = await openFirst();

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
      let lastDeliveryAt = Date.now();
      let suspicion = 0;
      let checking = false;
      const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), heartbeatMs);
      // a consumer whose server died can go silent with events pending: compare with the server's view and resume
      const watchdog = setInterval(() => {
        if (ended || checking || Date.now() - lastDeliveryAt < stallCheckMs) {
          if (Date.now() - lastDeliveryAt < stallCheckMs) suspicion = 0;
          return;
        }
        checking = true;
        const watched = current;
        void Promise.race([watched.consumer.info(false).then((info) => info.num_pending), sleep(stallCheckMs).then(() => -1)])
          .catch(() => -1)
          .then((pending) => {
            suspicion = pending === 0 ? 0 : suspicion + (pending < 0 ? 2 : 1);
            if (suspicion >= 2 && watched === current && !ended) {
              suspicion = 0;
              request.log.warn({ lastSeq, pending }, 'event consumer stalled; resuming after the last delivered sequence');
              void watched.messages.close().catch(() => undefined);
            }
          })
          .finally(() => (checking = false));
      }, stallCheckMs);
      const end = async (): Promise<void> => {
        if (ended) return;
        ended = true;
        clearInterval(heartbeat);
        clearInterval(watchdog);
        unregister();
        await current.messages.close().catch(() => undefined);
        await current.consumer.delete().catch(() => undefined);
        if (!res.writableEnded) res.end();
      };
      const unregister = app.liveStreams.add({ end });
      res.on('close', () => void end());

      void (async () => {
        let failingSince: number | undefined;
        for (;;) {
          for await (const message of current.messages) {
            if (ended) break;
            lastDeliveryAt = Date.now();
            lastSeq = message.seq;
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
          if (ended) return;
          // the consumer ended (stalled, deleted with its server, or the bus is down): a new one after lastSeq
          void current.consumer.delete().catch(() => undefined);
          for (let attempt = 0; !ended; attempt++) {
            try {
              current = await open();
              lastDeliveryAt = Date.now();
              failingSince = undefined;
              break;
            } catch (error) {
              failingSince ??= Date.now();
              if (Date.now() - failingSince > resumeDeadlineMs) {
                // the client resumes with Last-Event-ID (the id below) once the bus is back
                const body = { ...new VirtError('BUS_UNAVAILABLE', `the event stream could not be resumed for ${Math.round(resumeDeadlineMs / 1000)} s: ${(error as Error).message}`).toBody(), resumeAfter: lastSeq };
                res.write(`id: ${lastSeq}\nevent: error\ndata: ${JSON.stringify(body)}\n\n`);
                return;
              }
              await sleep(Math.min(2000, 100 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random() / 2));
            }
          }
          if (ended) return;
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

import type { FastifyInstance } from 'fastify';
import { jetstreamManager } from '@nats-io/jetstream';
import { EVENTS_STREAM, VirtError } from '@virtbus/api-contract';
import { shared } from './skip-override.js';

/** How long a /readyz verdict on the event stream is reused: probes every second must not each ask JetStream. */
const STREAM_CHECK_CACHE_MS = 2000;
const STREAM_CHECK_TIMEOUT_MS = 2000;

/**
 * `/healthz`: the process answers. `/readyz`: the bus is connected and the event stream answers, else 503
 * BUS_UNAVAILABLE with the reason; both public (load balancers, orchestrators) and outside the API document.
 */
async function healthPlugin(app: FastifyInstance): Promise<void> {
  let streamCheck: { at: number; result: Promise<string | undefined> } | undefined;

  function streamProblem(): Promise<string | undefined> {
    if (streamCheck && Date.now() - streamCheck.at < STREAM_CHECK_CACHE_MS) return streamCheck.result;
    const result = (async () => {
      try {
        const nc = await app.agents.liveConnection();
        const jsm = await jetstreamManager(nc, { timeout: STREAM_CHECK_TIMEOUT_MS, checkAPI: false });
        await jsm.streams.info(EVENTS_STREAM);
        return undefined;
      } catch (error) {
        return VirtError.is(error, 'BUS_UNAVAILABLE') ? error.message : `stream ${EVENTS_STREAM} not reachable: ${(error as Error).message}`;
      }
    })();
    streamCheck = { at: Date.now(), result };
    return result;
  }

  app.get('/healthz', { schema: { hide: true }, config: { auth: false } }, async () => ({ status: 'ok' }));

  app.get('/readyz', { schema: { hide: true }, config: { auth: false } }, async (_request, reply) => {
    const problem = await streamProblem();
    if (problem === undefined) return { status: 'ready', bus: 'connected', stream: EVENTS_STREAM };
    return reply.code(503).send({ ...new VirtError('BUS_UNAVAILABLE', problem).toBody(), bus: app.agents.busDownSince() === undefined ? 'connected' : 'disconnected' });
  });
}

export default shared(healthPlugin);

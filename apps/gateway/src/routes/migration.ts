import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { httpPath, isNodeName, Operations, replyWaitMs, type MigrationRequest } from '@virtbus/api-contract';
import { operationSchema } from './operations.js';

const spec = Operations['domain.migrate'];

export const migrationRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post<{ Params: { node: string; id: string }; Body: MigrationRequest }>(
    httpPath(spec.http),
    {
      config: {
        permission: 'domain.migrate',
        // checked before the body is validated: only a well-formed node name counts
        touchesNodes: (request) => {
          const destination = (request.body as { destination?: unknown } | undefined)?.destination;
          return typeof destination === 'string' && destination.length <= 63 && isNodeName(destination) ? [destination] : [];
        },
      },
      // the compatibility check asks the destination agent (and its QEMU) before the operation starts: spec.wait
      schema: operationSchema('domain.migrate'),
    },
    async (request, reply) => {
      const { node, id } = request.params;
      const destination = request.body.destination;
      // the caller is allowed on both nodes (touchesNodes): ask the destination for a one-time ticket the source hands on
      const { uuid } = await app.agents.call(node, 'domain.get', { id });
      const ticket =
        destination === node ? undefined : (await app.agents.call(destination, 'migration.accept', { uuid, source: node })).ticket;
      const operation = await app.agents.call(node, 'domain.migrate', { id: uuid, migration: request.body, ...(ticket ? { ticket } : {}) }, { timeoutMs: replyWaitMs(spec, {}, 0) });
      return reply.code(spec.http.status).send(operation);
    },
  );
};

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { MigrationRequest, isNodeName } from '@virtbus/api-contract';
import { Tags } from '../plugins/openapi.js';
import { DomainCallCodes, DomainParams, errorResponses, ref } from '../schemas.js';

/** The compatibility check asks the destination agent (and its QEMU) before the operation starts. */
const MIGRATE_CHECK_TIMEOUT_MS = 30_000;

export const migrationRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/v1/nodes/:node/domains/:id/migrate',
    {
      config: {
        permission: 'domain.migrate',
        // checked before the body is validated: only a well-formed node name counts
        touchesNodes: (request) => {
          const destination = (request.body as { destination?: unknown } | undefined)?.destination;
          return typeof destination === 'string' && destination.length <= 63 && isNodeName(destination) ? [destination] : [];
        },
      },
      schema: {
        operationId: 'migrateDomain',
        tags: [Tags.Domains],
        summary: 'Migrate a domain from this node to the destination node; returns the async operation (progress, cancel)',
        params: DomainParams,
        body: MigrationRequest,
        response: { 202: ref('Operation'), ...errorResponses(...DomainCallCodes, 'INVALID_ARG', 'MIGRATION_INCOMPATIBLE', 'DOMAIN_EXISTS') },
      },
    },
    async (request, reply) => {
      const { node, id } = request.params;
      const destination = request.body.destination;
      // the caller is allowed on both nodes (touchesNodes): ask the destination for a one-time ticket the source hands on
      const { uuid } = await app.agents.call(node, 'domain.get', { id });
      const ticket =
        destination === node ? undefined : (await app.agents.call(destination, 'migration.accept', { uuid, source: node })).ticket;
      const operation = await app.agents.call(node, 'domain.migrate', { id: uuid, migration: request.body, ...(ticket ? { ticket } : {}) }, { timeoutMs: MIGRATE_CHECK_TIMEOUT_MS });
      return reply.code(202).send(operation);
    },
  );
};

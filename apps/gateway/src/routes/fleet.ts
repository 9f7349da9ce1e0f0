import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { FleetDomainListRequest, PAGE_ENVELOPE_BYTES } from '@virtbus/api-contract';
import { canSeeNode } from '@virtbus/security';
import { Tags } from '../plugins/openapi.js';
import { errorResponses, ref } from '../schemas.js';

/** An HTTP reply, not a bus reply, but kept to the same 1 MiB bound as every other page. */
const FLEET_PAGE_BYTES = 1024 * 1024 - PAGE_ENVELOPE_BYTES;

export const fleetRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/domains',
    {
      config: { permission: 'domain.list' },
      schema: {
        operationId: 'listFleetDomains',
        tags: [Tags.Domains],
        summary: 'Domains of every node in (node, name, uuid) order, answered from the gateway fleet index',
        description:
          'The same filters (`state`, `driver`, name `prefix`, `labelSelector`) and paging (`limit`, `continue`) as the per-node list, over every ' +
          'node the caller may see. No agent is asked per request: the gateway lists each node once and follows its events. `asOf` is when the ' +
          'index answered; `stale` names nodes whose entries are not current (not yet listed, listed again after a missed event, or unreachable).',
        querystring: FleetDomainListRequest,
        response: { 200: ref('FleetDomainList'), ...errorResponses('BUS_UNAVAILABLE') },
      },
    },
    async (request) => {
      await app.agents.liveConnection();
      const index = await app.fleet.index();
      return index.page(request.query, (node) => canSeeNode(request.identity, node), FLEET_PAGE_BYTES);
    },
  );
};

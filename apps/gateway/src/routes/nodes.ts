import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { PAGE_ENVELOPE_BYTES, PageRequestFields } from '@virtbus/api-contract';
import type { NodeRegistryCache } from '@virtbus/client';
import { canSeeNode } from '@virtbus/security';
import { NodeListJson } from '../fleet/node-list.js';
import { Tags } from '../plugins/openapi.js';
import { errorResponses, ref } from '../schemas.js';

const NodeListQuery = Type.Object({ ...PageRequestFields }, { additionalProperties: false });
/** An unpaged node list stays under 1 MiB like every bus reply (about 3,000 nodes); beyond that it pages. */
const NODE_PAGE_BYTES = 1024 * 1024 - PAGE_ENVELOPE_BYTES;

export const nodeRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const nodeLists = new WeakMap<NodeRegistryCache, NodeListJson>();
  app.get(
    '/v1/nodes',
    {
      schema: {
        operationId: 'listNodes',
        tags: [Tags.Nodes],
        summary: 'Registered nodes in name order, online when their agent heartbeat is recent; answered from the registry cache, paged with limit/continue',
        querystring: NodeListQuery,
        response: { 200: ref('NodeList'), ...errorResponses('AGENT_UNREACHABLE', 'BUS_UNAVAILABLE') },
      },
    },
    async (request, reply) => {
      const registry = await app.agents.loadedRegistry();
      let list = nodeLists.get(registry);
      if (!list) nodeLists.set(registry, (list = new NodeListJson(registry)));
      // callers limited to some nodes see only those; paging runs over what they may see. Already JSON: sent as is
      const body = list.page(request.query, (node) => canSeeNode(request.identity, node), NODE_PAGE_BYTES);
      return reply.type('application/json; charset=utf-8').send(body);
    },
  );
};

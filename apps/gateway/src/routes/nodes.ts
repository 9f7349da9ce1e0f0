import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { PAGE_ENVELOPE_BYTES, PageRequestFields, takePage } from '@virtbus/api-contract';
import { visibleNodes } from '@virtbus/security';
import { Tags } from '../plugins/openapi.js';
import { errorResponses, ref } from '../schemas.js';

const NodeListQuery = Type.Object({ ...PageRequestFields }, { additionalProperties: false });
/** An unpaged node list stays under 1 MiB like every bus reply (about 3,000 nodes); beyond that it pages. */
const NODE_PAGE_BYTES = 1024 * 1024 - PAGE_ENVELOPE_BYTES;

export const nodeRoutes: FastifyPluginAsyncTypebox = async (app) => {
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
    async (request) => {
      // callers limited to some nodes see only those; paging runs over what they may see
      const visible = visibleNodes(request.identity, await app.agents.listNodes(), (summary) => summary.node);
      const page = takePage(visible, { keyOf: (summary) => [summary.node], view: (summary) => summary, query: request.query, maxBytes: NODE_PAGE_BYTES });
      return {
        nodes: page.items,
        ...(page.continue ? { continue: page.continue, remaining: page.remaining } : {}),
        onlineWithinSeconds: await app.agents.onlineWithinSeconds(),
      };
    },
  );
};

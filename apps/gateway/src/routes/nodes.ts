import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Tags } from '../plugins/openapi.js';
import { AgentCallCodes, errorResponses, NodeParams, ref } from '../schemas.js';

export const nodeRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/nodes',
    {
      schema: {
        operationId: 'listNodes',
        tags: [Tags.Nodes],
        summary: 'Nodes with a live agent, plus registered nodes whose agent is offline',
        response: { 200: ref('NodeList'), ...errorResponses('AGENT_UNREACHABLE') },
      },
    },
    async () => ({ nodes: await app.agents.listNodes() }),
  );

  app.get(
    '/v1/nodes/:node',
    {
      schema: {
        operationId: 'getNode',
        tags: [Tags.Nodes],
        summary: 'Node hardware, memory, NUMA cells and drivers',
        params: NodeParams,
        response: { 200: ref('NodeInfo'), ...errorResponses(...AgentCallCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'node.info', {}),
  );
};

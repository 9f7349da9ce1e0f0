import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { DomainStatsListRequest } from '@virtbus/api-contract';
import { visibleNodes } from '@virtbus/security';
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
    // callers limited to some nodes see only those
    async (request) => ({ nodes: visibleNodes(request.identity, await app.agents.listNodes(), (summary) => summary.node) }),
  );

  app.get(
    '/v1/nodes/:node',
    {
      config: { permission: 'node.info' },
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

  app.get(
    '/v1/nodes/:node/stats',
    {
      schema: {
        operationId: 'getNodeStats',
        tags: [Tags.Nodes],
        summary: 'Host CPU seconds by mode, memory and free memory per NUMA cell',
        params: NodeParams,
        response: { 200: ref('NodeStats'), ...errorResponses(...AgentCallCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'node.stats', {}),
  );

  app.get(
    '/v1/nodes/:node/stats/domains',
    {
      schema: {
        operationId: 'getAllDomainStats',
        tags: [Tags.Nodes],
        summary: 'Stats of every domain of the node in (name, uuid) order (paged with limit/continue); a domain that misses the deadline is marked timedOut',
        params: NodeParams,
        querystring: DomainStatsListRequest,
        response: { 200: ref('DomainStatsList'), ...errorResponses(...AgentCallCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'domain.stats.all', request.query),
  );
};

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { CallerIdentity, VirtError } from '@virtbus/api-contract';
import { PermissionClass } from '@virtbus/security';
import { Tags } from '../plugins/openapi.js';
import { errorResponses } from '../schemas.js';

/** Who the caller is, so a client (the web UI) shows only what its role allows. */
export const identityRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/whoami',
    {
      config: { permission: PermissionClass.Read },
      schema: {
        operationId: 'whoAmI',
        tags: [Tags.Nodes],
        summary: "The caller's name, role and node scope",
        response: { 200: CallerIdentity, ...errorResponses() },
      },
    },
    async (request) => {
      const identity = request.identity;
      if (!identity) throw new VirtError('UNAUTHORIZED', 'authentication required');
      return { name: identity.name, role: identity.role, nodes: identity.nodes === 'all' ? ('all' as const) : [...identity.nodes], via: identity.via };
    },
  );
};

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { NodeName, VirtError } from '@virtbus/api-contract';
import { PermissionClass, Roles } from '@virtbus/security';
import { Tags } from '../plugins/openapi.js';
import { errorResponses } from '../schemas.js';

const CallerIdentity = Type.Object(
  {
    name: Type.String(),
    role: Type.Enum([...Roles], { description: 'read-only reads and follows events; operator also runs domains and opens consoles; admin also changes definitions, storage and networks' }),
    nodes: Type.Union([Type.Literal('all'), Type.Array(NodeName)], { description: 'The nodes this caller may reach' }),
    via: Type.Enum(['token', 'certificate', 'loopback-dev']),
  },
  { additionalProperties: false, title: 'CallerIdentity' },
);

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

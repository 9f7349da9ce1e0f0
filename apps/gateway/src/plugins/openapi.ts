import type { FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { HttpTags } from '@virtbus/api-contract';
import { shared } from './skip-override.js';

export const Tags = HttpTags;

async function openapiPlugin(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'virtbus API',
        version: 'v1',
        description: 'Domains on a fleet of nodes. Each node runs an agent; the gateway forwards every call to it over NATS.',
      },
      // relative: the document is served by the gateway it describes
      servers: [{ url: '/', description: 'The gateway serving this document' }],
      components: {
        // the plugin's types know OpenAPI 3.0 schemes only; mutualTLS is 3.1's
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'A token of the gateway token file; it names the role and the nodes the caller may use' },
          mutualTLS: {
            type: 'mutualTLS',
            description: 'A client certificate signed by the virtbus CA: the role comes from the CN mapping or the first OU, the nodes from an OU `nodes a b`',
          },
        } as unknown as Record<string, { type: 'http'; scheme: string }>,
      },
      // either credential; loopback dev mode needs none
      security: [{ bearer: [] }, { mutualTLS: [] }],
      tags: [
        { name: Tags.Nodes, description: 'Nodes and their agents' },
        { name: Tags.Domains, description: 'Virtual machines and containers' },
        { name: Tags.Events, description: 'Lifecycle events (Server-Sent Events)' },
        { name: Tags.Console, description: 'Serial console (WebSocket)' },
        { name: Tags.Storage, description: 'Storage pools, volumes and their async operations' },
        { name: Tags.Interfaces, description: 'Host interfaces and their configuration transaction' },
        { name: Tags.Firewall, description: 'Firewall rule sets bound to domain NICs (nftables)' },
        { name: Tags.Networks, description: 'Virtual networks: bridges, DHCP/DNS (dnsmasq), NAT (nftables)' },
      ],
    },
    // Shared schemas keep their $id as the component name instead of def-0, def-1…
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, index) => (typeof json.$id === 'string' ? json.$id : `def-${index}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });
  app.get('/openapi.json', { schema: { hide: true }, config: { auth: false } }, async () => app.swagger());
}

export default shared(openapiPlugin);

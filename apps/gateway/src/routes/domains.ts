import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { DEFAULT_STATE_TIMEOUT_S, DomainListRequest, DomainPut, DomainsPost, DomainStatePut, ExecRequest } from '@virtbus/api-contract';
import { Tags } from '../plugins/openapi.js';
import { AgentCallCodes, DomainCallCodes, DomainParams, errorResponses, NodeParams, ref } from '../schemas.js';

const SECOND = 1000;
/** Agents get this much longer than the operation's own timeout to send their reply. */
const REPLY_MARGIN_S = 5;
/** Default of ExecRequest.timeout in seconds. */
const EXEC_DEFAULT_TIMEOUT_S = 60;

export interface DomainRouteOptions {
  requestTimeoutMs: number;
}

export const domainRoutes: FastifyPluginAsyncTypebox<DomainRouteOptions> = async (app, { requestTimeoutMs }) => {
  app.get(
    '/v1/nodes/:node/domains',
    {
      config: { permission: 'domain.list' },
      schema: {
        operationId: 'listDomains',
        tags: [Tags.Domains],
        summary: 'Domains of the node in (name, uuid) order',
        description:
          'Filtered by `state`, `driver`, name `prefix` and a Kubernetes `labelSelector`; paged with `limit` and the `continue` token of the ' +
          'previous page (absent on the last page). Without `limit` every domain is returned unless that would exceed one bus reply; ' +
          'then the first page that fits comes with `continue`.',
        params: NodeParams,
        querystring: DomainListRequest,
        response: { 200: ref('DomainList'), ...errorResponses(...AgentCallCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'domain.list', request.query),
  );

  app.post(
    '/v1/nodes/:node/domains',
    {
      config: { permission: 'domain.define' },
      schema: {
        operationId: 'defineDomain',
        tags: [Tags.Domains],
        summary: 'Define a persistent domain',
        params: NodeParams,
        body: DomainsPost,
        response: { 201: ref('Domain'), ...errorResponses(...AgentCallCodes, 'DOMAIN_EXISTS', 'OPERATION_UNSUPPORTED', 'PAYLOAD_TOO_LARGE') },
      },
    },
    async (request, reply) => {
      const domain = await app.agents.call(request.params.node, 'domain.define', request.body);
      return reply.code(201).send(domain);
    },
  );

  app.get(
    '/v1/nodes/:node/domains/:id',
    {
      config: { permission: 'domain.get' },
      schema: {
        operationId: 'getDomain',
        tags: [Tags.Domains],
        summary: 'One domain by uuid or name',
        params: DomainParams,
        response: { 200: ref('Domain'), ...errorResponses(...AgentCallCodes, 'NO_DOMAIN') },
      },
    },
    async (request) => app.agents.call(request.params.node, 'domain.get', { id: request.params.id }),
  );

  app.put(
    '/v1/nodes/:node/domains/:id',
    {
      config: { permission: 'domain.update' },
      schema: {
        operationId: 'updateDomain',
        tags: [Tags.Domains],
        summary: "Replace parts of a domain's config; they apply at next start",
        params: DomainParams,
        body: DomainPut,
        response: { 200: ref('Domain'), ...errorResponses(...DomainCallCodes, 'PAYLOAD_TOO_LARGE') },
      },
    },
    async (request) => app.agents.call(request.params.node, 'domain.update', { id: request.params.id, config: request.body }),
  );

  app.delete(
    '/v1/nodes/:node/domains/:id',
    {
      config: { permission: 'domain.undefine' },
      schema: {
        operationId: 'undefineDomain',
        tags: [Tags.Domains],
        summary: 'Remove a shut-off domain; returns it as it was',
        params: DomainParams,
        response: { 200: ref('Domain'), ...errorResponses(...DomainCallCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'domain.undefine', { id: request.params.id }),
  );

  app.put(
    '/v1/nodes/:node/domains/:id/state',
    {
      config: { permission: 'domain.state' },
      schema: {
        operationId: 'changeDomainState',
        tags: [Tags.Domains],
        summary: 'Start, shut down, destroy, reboot, reset, suspend or resume',
        params: DomainParams,
        body: DomainStatePut,
        response: { 200: ref('Domain'), ...errorResponses(...DomainCallCodes, 'PAYLOAD_TOO_LARGE', 'STORAGE_FULL') },
      },
    },
    async (request) => {
      const change = request.body;
      const timeoutMs = Math.max(requestTimeoutMs, ((change.timeout ?? DEFAULT_STATE_TIMEOUT_S) + REPLY_MARGIN_S) * SECOND);
      return app.agents.call(request.params.node, 'domain.state', { id: request.params.id, change }, { timeoutMs });
    },
  );

  app.get(
    '/v1/nodes/:node/domains/:id/stats',
    {
      config: { permission: 'domain.stats' },
      schema: {
        operationId: 'getDomainStats',
        tags: [Tags.Domains],
        summary: 'Host-side stats of one domain (libvirt stats groups)',
        params: DomainParams,
        response: { 200: ref('DomainStats'), ...errorResponses(...DomainCallCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'domain.stats', { id: request.params.id }),
  );

  app.post(
    '/v1/nodes/:node/domains/:id/exec',
    {
      config: { permission: 'domain.exec' },
      schema: {
        operationId: 'execInDomain',
        tags: [Tags.Domains],
        summary: 'Run a command inside a running domain and wait for it',
        params: DomainParams,
        body: ExecRequest,
        response: { 200: ref('ExecResult'), ...errorResponses(...DomainCallCodes, 'PAYLOAD_TOO_LARGE') },
      },
    },
    async (request) => {
      const exec = request.body;
      const timeoutMs = ((exec.timeout ?? EXEC_DEFAULT_TIMEOUT_S) + REPLY_MARGIN_S) * SECOND;
      return app.agents.call(request.params.node, 'domain.exec', { id: request.params.id, exec }, { timeoutMs });
    },
  );
};

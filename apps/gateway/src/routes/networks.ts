import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { DomainNic, MacAddress, NamePageRequestFields, NetworkPut, NetworksPost, NetworkStatePut, NodeName, ObjectName, type ErrorCode } from '@virtbus/api-contract';
import { Tags } from '../plugins/openapi.js';
import { AgentCallCodes, DomainCallCodes, DomainParams, errorResponses, NodeParams, ref } from '../schemas.js';

const NetworkParams = Type.Object({ node: NodeName, network: ObjectName }, { additionalProperties: false });
const NicParams = Type.Object({ node: NodeName, id: DomainParams.properties.id, mac: MacAddress }, { additionalProperties: false });
const NicLinkPut = Type.Object({ link: Type.Enum(['up', 'down']) }, { additionalProperties: false, title: 'NicLinkPut' });
const NamePageQuery = Type.Object(NamePageRequestFields, { additionalProperties: false });
const NicDetachQuery = Type.Object({ timeout: Type.Optional(Type.Integer({ minimum: 1, maximum: 600 })) }, { additionalProperties: false });
const NetworkCodes: ErrorCode[] = [...AgentCallCodes, 'NO_NETWORK', 'OPERATION_INVALID'];

/** Virtual networks of a node (libvirt's net-* verbs) and domain addresses from their leases. */
export const networkRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/nodes/:node/networks',
    {
      config: { permission: 'network.list' },
      schema: { operationId: 'listNetworks', tags: [Tags.Networks], summary: 'Virtual networks of the node in name order (paged with limit/continue)', params: NodeParams, querystring: NamePageQuery, response: { 200: ref('NetworkList'), ...errorResponses(...AgentCallCodes) } },
    },
    async (request) => app.agents.call(request.params.node, 'network.list', request.query),
  );
  app.post(
    '/v1/nodes/:node/networks',
    {
      config: { permission: 'network.define' },
      schema: {
        operationId: 'defineNetwork',
        tags: [Tags.Networks],
        summary: 'Define a virtual network (inactive until started)',
        params: NodeParams,
        body: NetworksPost,
        response: { 201: ref('Network'), ...errorResponses(...AgentCallCodes, 'NETWORK_EXISTS', 'PAYLOAD_TOO_LARGE') },
      },
    },
    async (request, reply) => reply.code(201).send(await app.agents.call(request.params.node, 'network.define', request.body)),
  );
  app.get(
    '/v1/nodes/:node/networks/:network',
    {
      config: { permission: 'network.get' },
      schema: { operationId: 'getNetwork', tags: [Tags.Networks], summary: 'One virtual network', params: NetworkParams, response: { 200: ref('Network'), ...errorResponses(...NetworkCodes) } },
    },
    async (request) => app.agents.call(request.params.node, 'network.get', { network: request.params.network }),
  );
  app.put(
    '/v1/nodes/:node/networks/:network',
    {
      config: { permission: 'network.update' },
      schema: {
        operationId: 'updateNetwork',
        tags: [Tags.Networks],
        summary: 'Change autostart, static DHCP hosts and DNS hosts; host changes apply live on an active network',
        params: NetworkParams,
        body: NetworkPut,
        response: { 200: ref('Network'), ...errorResponses(...NetworkCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'network.update', { network: request.params.network, config: request.body }),
  );
  app.delete(
    '/v1/nodes/:node/networks/:network',
    {
      config: { permission: 'network.undefine' },
      schema: { operationId: 'undefineNetwork', tags: [Tags.Networks], summary: 'Remove an inactive network definition', params: NetworkParams, response: { 200: ref('Network'), ...errorResponses(...NetworkCodes) } },
    },
    async (request) => app.agents.call(request.params.node, 'network.undefine', { network: request.params.network }),
  );
  app.put(
    '/v1/nodes/:node/networks/:network/state',
    {
      config: { permission: 'network.state' },
      schema: {
        operationId: 'changeNetworkState',
        tags: [Tags.Networks],
        summary: 'Start (bridge, dnsmasq, nftables) or stop (all removed) a network',
        params: NetworkParams,
        body: NetworkStatePut,
        response: { 200: ref('Network'), ...errorResponses(...NetworkCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'network.state', { network: request.params.network, change: request.body }, { timeoutMs: 60_000 }),
  );
  app.get(
    '/v1/nodes/:node/networks/:network/leases',
    {
      config: { permission: 'network.leases' },
      schema: { operationId: 'listNetworkLeases', tags: [Tags.Networks], summary: 'DHCP leases of an active network', params: NetworkParams, response: { 200: ref('DhcpLeaseList'), ...errorResponses(...NetworkCodes) } },
    },
    async (request) => app.agents.call(request.params.node, 'network.leases', { network: request.params.network }),
  );
  app.get(
    '/v1/nodes/:node/domains/:id/interfaces',
    {
      config: { permission: 'domain.interfaces' },
      schema: {
        operationId: 'listDomainInterfaces',
        tags: [Tags.Networks],
        summary: "A domain's NICs with their addresses from DHCP leases (domifaddr --source lease)",
        params: DomainParams,
        response: { 200: ref('DomainInterfaceList'), ...errorResponses(...DomainCallCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'domain.interfaces', { id: request.params.id }),
  );
  app.put(
    '/v1/nodes/:node/domains/:id/interfaces/:mac/link',
    {
      config: { permission: 'domain.nic.link' },
      schema: {
        operationId: 'setDomainInterfaceLink',
        tags: [Tags.Networks],
        summary: "Set a running domain's NIC link up or down (domif-setlink)",
        params: NicParams,
        body: NicLinkPut,
        response: { 200: ref('Domain'), ...errorResponses(...DomainCallCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'domain.nic.link', { id: request.params.id, mac: request.params.mac, link: request.body.link }),
  );
  app.post(
    '/v1/nodes/:node/domains/:id/interfaces',
    {
      config: { permission: 'domain.nic.attach' },
      schema: {
        operationId: 'attachDomainInterface',
        tags: [Tags.Networks],
        summary: 'Add a NIC: hotplugged when the domain runs, and kept in its definition',
        params: DomainParams,
        body: DomainNic,
        response: { 200: ref('Domain'), ...errorResponses(...DomainCallCodes, 'NO_NETWORK') },
      },
    },
    async (request) => app.agents.call(request.params.node, 'domain.nic.attach', { id: request.params.id, nic: request.body }, { timeoutMs: 30_000 }),
  );
  app.delete(
    '/v1/nodes/:node/domains/:id/interfaces/:mac',
    {
      config: { permission: 'domain.nic.detach' },
      schema: {
        operationId: 'detachDomainInterface',
        tags: [Tags.Networks],
        summary: 'Remove a NIC: unplugged when the domain runs (waits for the guest), and from its definition',
        params: NicParams,
        querystring: NicDetachQuery,
        response: { 200: ref('Domain'), ...errorResponses(...DomainCallCodes) },
      },
    },
    async (request) =>
      app.agents.call(
        request.params.node,
        'domain.nic.detach',
        { id: request.params.id, mac: request.params.mac, ...(request.query.timeout ? { timeout: request.query.timeout } : {}) },
        { timeoutMs: ((request.query.timeout ?? 10) + 10) * 1000 },
      ),
  );
};

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import {
  HostInterface,
  HostInterfaceBegin,
  HostInterfaceChanges,
  HostInterfaceList,
  HostInterfaceName,
  HostInterfaceTransaction,
  NamePageRequestFields,
  NodeName,
  type ErrorCode,
} from '@virtbus/api-contract';
import { Tags } from '../plugins/openapi.js';
import { AgentCallCodes, errorResponses, NodeParams } from '../schemas.js';

const InterfaceParams = Type.Object({ node: NodeName, name: HostInterfaceName }, { additionalProperties: false });
const TransactionCodes: ErrorCode[] = [...AgentCallCodes, 'OPERATION_INVALID'];
const ChangeCodes: ErrorCode[] = [...TransactionCodes, 'OPERATION_UNSUPPORTED', 'PAYLOAD_TOO_LARGE'];
/** Rolling back a big configuration runs many `ip` commands. */
const TRANSACTION_TIMEOUT_MS = 60_000;

/** Host interfaces and their configuration transaction (libvirt's iface-* verbs); `/interfaces/transaction` is not an interface name. */
export const interfaceRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/nodes/:node/interfaces',
    {
      config: { permission: 'iface.list' },
      schema: {
        operationId: 'listHostInterfaces',
        tags: [Tags.Interfaces],
        summary: 'Host interfaces: state, MTU, MAC, addresses, stats, bridge membership, and the open transaction',
        params: NodeParams,
        querystring: Type.Object(NamePageRequestFields, { additionalProperties: false }),
        response: { 200: HostInterfaceList, ...errorResponses(...AgentCallCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'iface.list', request.query),
  );

  app.post(
    '/v1/nodes/:node/interfaces/changes',
    {
      config: { permission: 'iface.configure' },
      schema: {
        operationId: 'configureHostInterfaces',
        tags: [Tags.Interfaces],
        summary: 'Apply changes live in order, all or nothing (up/down, MTU, master, addresses, create/delete bridge or VLAN)',
        params: NodeParams,
        body: HostInterfaceChanges,
        response: { 200: HostInterfaceList, ...errorResponses(...ChangeCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'iface.configure', request.body, { timeoutMs: TRANSACTION_TIMEOUT_MS }),
  );

  app.get(
    '/v1/nodes/:node/interfaces/transaction',
    {
      config: { permission: 'iface.transaction' },
      schema: {
        operationId: 'getHostInterfaceTransaction',
        tags: [Tags.Interfaces],
        summary: 'The open transaction with the current interfaces (OPERATION_INVALID when none is open)',
        params: NodeParams,
        response: { 200: HostInterfaceList, ...errorResponses(...TransactionCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'iface.transaction', {}),
  );

  app.post(
    '/v1/nodes/:node/interfaces/transaction',
    {
      config: { permission: 'iface.begin' },
      schema: {
        operationId: 'beginHostInterfaceTransaction',
        tags: [Tags.Interfaces],
        summary: 'Snapshot the interface configuration (iface-begin); rolled back automatically unless committed in time',
        params: NodeParams,
        body: HostInterfaceBegin,
        response: { 201: HostInterfaceTransaction, ...errorResponses(...TransactionCodes) },
      },
    },
    async (request, reply) => reply.code(201).send(await app.agents.call(request.params.node, 'iface.begin', request.body)),
  );

  app.post(
    '/v1/nodes/:node/interfaces/transaction/commit',
    {
      config: { permission: 'iface.commit' },
      schema: {
        operationId: 'commitHostInterfaceTransaction',
        tags: [Tags.Interfaces],
        summary: 'Keep the changes made since begin (iface-commit)',
        params: NodeParams,
        response: { 200: HostInterfaceTransaction, ...errorResponses(...TransactionCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'iface.commit', {}),
  );

  app.post(
    '/v1/nodes/:node/interfaces/transaction/rollback',
    {
      config: { permission: 'iface.rollback' },
      schema: {
        operationId: 'rollbackHostInterfaceTransaction',
        tags: [Tags.Interfaces],
        summary: 'Restore the configuration of begin (iface-rollback)',
        params: NodeParams,
        response: { 200: HostInterfaceTransaction, ...errorResponses(...TransactionCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'iface.rollback', {}, { timeoutMs: TRANSACTION_TIMEOUT_MS }),
  );

  app.get(
    '/v1/nodes/:node/interfaces/:name',
    {
      config: { permission: 'iface.get' },
      schema: {
        operationId: 'getHostInterface',
        tags: [Tags.Interfaces],
        summary: 'One host interface',
        params: InterfaceParams,
        response: { 200: HostInterface, ...errorResponses(...AgentCallCodes, 'NOT_FOUND') },
      },
    },
    async (request) => app.agents.call(request.params.node, 'iface.get', { name: request.params.name }),
  );
};

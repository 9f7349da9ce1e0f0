import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { FirewallRuleSet, FirewallRuleSetList, FirewallRuleSetPut, FirewallRuleSetsPost, NamePageRequestFields, NodeName, ObjectName, type ErrorCode } from '@virtbus/api-contract';
import { Tags } from '../plugins/openapi.js';
import { AgentCallCodes, errorResponses, NodeParams } from '../schemas.js';

const RuleSetParams = Type.Object({ node: NodeName, name: ObjectName }, { additionalProperties: false });
const RuleSetCodes: ErrorCode[] = [...AgentCallCodes, 'NOT_FOUND'];

/** Firewall rule sets (libvirt's nwfilter, simplified); NICs name them in their `filter` field. */
export const firewallRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/nodes/:node/firewall/rulesets',
    {
      config: { permission: 'firewall.ruleset.list' },
      schema: {
        operationId: 'listFirewallRuleSets',
        tags: [Tags.Firewall],
        summary: 'Firewall rule sets with the running NICs they are applied to',
        params: NodeParams,
        querystring: Type.Object(NamePageRequestFields, { additionalProperties: false }),
        response: { 200: FirewallRuleSetList, ...errorResponses(...AgentCallCodes) },
      },
    },
    async (request) => app.agents.call(request.params.node, 'firewall.ruleset.list', request.query),
  );

  app.post(
    '/v1/nodes/:node/firewall/rulesets',
    {
      config: { permission: 'firewall.ruleset.define' },
      schema: {
        operationId: 'defineFirewallRuleSet',
        tags: [Tags.Firewall],
        summary: 'Define a rule set (nwfilter-define)',
        params: NodeParams,
        body: FirewallRuleSetsPost,
        response: { 201: FirewallRuleSet, ...errorResponses(...AgentCallCodes, 'OPERATION_INVALID', 'PAYLOAD_TOO_LARGE') },
      },
    },
    async (request, reply) => reply.code(201).send(await app.agents.call(request.params.node, 'firewall.ruleset.define', request.body)),
  );

  app.get(
    '/v1/nodes/:node/firewall/rulesets/:name',
    {
      config: { permission: 'firewall.ruleset.get' },
      schema: { operationId: 'getFirewallRuleSet', tags: [Tags.Firewall], summary: 'One rule set', params: RuleSetParams, response: { 200: FirewallRuleSet, ...errorResponses(...RuleSetCodes) } },
    },
    async (request) => app.agents.call(request.params.node, 'firewall.ruleset.get', { name: request.params.name }),
  );

  app.put(
    '/v1/nodes/:node/firewall/rulesets/:name',
    {
      config: { permission: 'firewall.ruleset.update' },
      schema: {
        operationId: 'updateFirewallRuleSet',
        tags: [Tags.Firewall],
        summary: 'Replace the rules; every running NIC bound to the set gets them at once',
        params: RuleSetParams,
        body: FirewallRuleSetPut,
        response: { 200: FirewallRuleSet, ...errorResponses(...RuleSetCodes, 'PAYLOAD_TOO_LARGE') },
      },
    },
    async (request) => app.agents.call(request.params.node, 'firewall.ruleset.update', { name: request.params.name, ruleSet: request.body }, { timeoutMs: 60_000 }),
  );

  app.delete(
    '/v1/nodes/:node/firewall/rulesets/:name',
    {
      config: { permission: 'firewall.ruleset.delete' },
      schema: {
        operationId: 'deleteFirewallRuleSet',
        tags: [Tags.Firewall],
        summary: 'Delete a rule set no running NIC uses (nwfilter-undefine)',
        params: RuleSetParams,
        response: { 200: FirewallRuleSet, ...errorResponses(...RuleSetCodes, 'OPERATION_INVALID') },
      },
    },
    async (request) => app.agents.call(request.params.node, 'firewall.ruleset.delete', { name: request.params.name }),
  );
};

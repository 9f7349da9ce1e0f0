import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type, { type TSchema } from 'typebox';
import { httpPath, NodeName, OperationNames, Operations, replyWaitMs, type OperationName, type OperationRequest, type OperationSpec } from '@virtbus/api-contract';
import { AgentCallCodes, documentText, errorResponses, ref, SharedSchemas, type SharedSchemaName } from '../schemas.js';

export interface OperationRouteOptions {
  requestTimeoutMs: number;
}

type Bound = OperationSpec & { http: NonNullable<OperationSpec['http']> };

const specOf = (name: OperationName): OperationSpec => Operations[name];
const fieldsOf = (schema: TSchema): Record<string, TSchema> => (schema as { properties?: Record<string, TSchema> }).properties ?? {};
const pathParams = (path: string): string[] => [...path.matchAll(/:(\w+)/g)].map((match) => match[1]!);

/** Request field each path parameter fills (`:node` addresses the agent and fills none). */
function paramFields(http: Bound['http']): Record<string, string> {
  return Object.fromEntries(pathParams(httpPath(http)).filter((param) => param !== 'node').map((param) => [param, http.params?.[param] ?? param]));
}

/** The schema of the query string or body: one request field, or the request's fields that neither the path nor the other part fills. */
function partSchema(spec: Bound, part: true | string, other: true | string | undefined): TSchema {
  const fields = fieldsOf(spec.request);
  if (part !== true) return fields[part]!;
  const taken = new Set([...Object.values(paramFields(spec.http)), ...(typeof other === 'string' ? [other] : [])]);
  if (taken.size === 0) return spec.request;
  return Type.Object(Object.fromEntries(Object.entries(fields).filter(([name]) => !taken.has(name))), { additionalProperties: false });
}

const sharedNames = new Map<unknown, SharedSchemaName>(Object.entries(SharedSchemas).map(([name, schema]) => [schema, name as SharedSchemaName]));

/** The route schema of an HTTP-bound operation: document text, parameters, body, responses and the errors it may answer. */
export function operationSchema(name: OperationName) {
  const spec = specOf(name) as Bound;
  const { http } = spec;
  const fields = fieldsOf(spec.request);
  const params = Type.Object(
    Object.fromEntries(pathParams(httpPath(http)).map((param) => [param, param === 'node' ? NodeName : fields[http.params?.[param] ?? param]!])),
    { additionalProperties: false },
  );
  const shared = sharedNames.get(spec.response);
  const title = (spec.response as { title?: string }).title;
  const success = { ...(shared ? ref(shared) : spec.response), description: title ? `The ${title}` : 'Done' };
  return {
    operationId: http.operationId,
    tags: [http.tag],
    summary: spec.summary,
    ...documentText(spec),
    ...(pathParams(httpPath(http)).length > 0 ? { params } : {}),
    ...(http.query !== undefined ? { querystring: partSchema(spec, http.query, http.body) } : {}),
    ...(http.body !== undefined ? { body: partSchema(spec, http.body, http.query) } : {}),
    response: { [http.status ?? 200]: success, ...errorResponses(...AgentCallCodes, ...(spec.errors ?? [])) },
  };
}

/** The agent request of an HTTP call: path parameters, query string and body placed as the binding says. */
function agentRequest(spec: Bound, fieldOfParam: readonly (readonly [string, string])[], params: Record<string, string>, query: unknown, body: unknown): Record<string, unknown> {
  const { http } = spec;
  const request: Record<string, unknown> = {};
  for (const [part, value] of [
    [http.query, query],
    [http.body, body],
  ] as const) {
    if (part === true) Object.assign(request, value);
    else if (part !== undefined) request[part] = value;
  }
  for (const [param, field] of fieldOfParam) request[field] = params[param];
  return request;
}

/** Every request/reply operation with an HTTP binding, registered from the contract's table: one route each. */
export const operationRoutes: FastifyPluginAsyncTypebox<OperationRouteOptions> = async (app, { requestTimeoutMs }) => {
  for (const name of OperationNames) {
    const spec = specOf(name);
    if (!spec.http || spec.http.served === 'hand') continue;
    const bound = spec as Bound;
    // computed once per route, not per request (a regex over the path each time)
    const fieldOfParam = Object.entries(paramFields(bound.http));
    app.route({
      method: bound.http.method,
      url: httpPath(bound.http),
      config: { permission: name },
      schema: operationSchema(name),
      handler: async (request, reply) => {
        const params = request.params as Record<string, string>;
        const payload = agentRequest(bound, fieldOfParam, params, request.query, request.body);
        const timeoutMs = replyWaitMs(bound, payload, requestTimeoutMs);
        const result = await app.agents.call(params['node']!, name, payload as OperationRequest<typeof name>, { timeoutMs });
        return reply.code(bound.http.status ?? 200).send(result);
      },
    });
  }
};

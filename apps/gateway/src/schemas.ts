import Type, { type TSchema } from 'typebox';
import * as Contract from '@virtbus/api-contract';
import { AsyncOperation, AsyncOperationList, DomainId, driversNote, ErrorBody, ErrorStatus, NodeName, ObjectErrors, SseErrorEvent, SseEventFamilies, type ErrorCode, type HttpBinding, type OperationName, type OperationSpec } from '@virtbus/api-contract';

/** Contract schemas under their own names. */
function named<const K extends keyof typeof Contract>(...names: K[]): Pick<typeof Contract, K> {
  return Object.fromEntries(names.map((name) => [name, Contract[name]])) as Pick<typeof Contract, K>;
}

/** Response schemas shared by $ref so the OpenAPI document names them under components.schemas. */
export const SharedSchemas = {
  Error: ErrorBody,
  ...named(
    'Domain',
    'DomainList',
    'DomainStats',
    'DomainStatsList',
    'ExecResult',
    'FleetDomainList',
    'LifecycleEvent',
    'NodeInfo',
    'NodeList',
    'NodeStats',
    'StoragePool',
    'StoragePoolList',
    'StorageVolume',
    'StorageVolumeList',
    'Network',
    'NetworkList',
    'DhcpLeaseList',
    'DomainInterfaceList',
    'DomainSnapshot',
    'DomainSnapshotList',
    'DomainSnapshotsDeleted',
    'ManagedSaveInfo',
  ),
  Operation: AsyncOperation,
  OperationList: AsyncOperationList,
  // every payload GET /v1/events can send
  StoragePoolEvent: SseEventFamilies.pool.payload,
  NetworkEvent: SseEventFamilies.network.payload,
  DomainSnapshotEvent: SseEventFamilies.snapshot.payload,
  OperationEvent: SseEventFamilies.operation.payload,
  GraphicsEvent: SseEventFamilies.graphics.payload,
  DomainEvent: SseEventFamilies.domainevent.payload,
  SseErrorEvent,
} as const;
export type SharedSchemaName = keyof typeof SharedSchemas;

export function sharedSchemaDefinitions(): Array<TSchema & { $id: string }> {
  return Object.entries(SharedSchemas).map(([name, schema]) => ({ ...schema, $id: name }));
}

export function ref(name: SharedSchemaName): { $ref: string } {
  return { $ref: `${name}#` };
}

export const NodeParams = Type.Object({ node: NodeName }, { additionalProperties: false });
export const DomainParams = Type.Object({ node: NodeName, id: DomainId }, { additionalProperties: false });

/** Error responses of a route, each described by the codes that produce that status. */
export function errorResponses(...codes: ErrorCode[]): Record<number, { $ref: string; description: string }> {
  const byStatus = new Map<number, ErrorCode[]>();
  // every route authenticates, checks the caller's role and nodes, and is rate limited
  for (const code of new Set<ErrorCode>(['INVALID_ARG', 'UNAUTHORIZED', 'FORBIDDEN', 'RATE_LIMITED', 'INTERNAL', ...codes])) {
    const status = ErrorStatus[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const responses: Record<number, { $ref: string; description: string }> = {};
  for (const [status, list] of [...byStatus].sort(([a], [b]) => a - b)) {
    responses[status] = { ...ref('Error'), description: list.join(', ') };
  }
  return responses;
}

/** The long text of a table operation: its binding's description, then which drivers serve it when only some do. */
export function documentText(spec: Pick<OperationSpec, 'drivers'> & { http: HttpBinding }): { description?: string } {
  const text = [spec.http.description, spec.drivers && driversNote(spec.drivers)].filter(Boolean).join(' ');
  return text ? { description: text } : {};
}

/** The document of a hand route from its table entry (served: 'hand'): operationId, tag, summary (or its own) and description. */
export function handRouteDocument(spec: Pick<OperationSpec, 'summary' | 'drivers'> & { http: HttpBinding }, summary = spec.summary) {
  return { operationId: spec.http.operationId, tags: [spec.http.tag as string], summary, ...documentText(spec) };
}

/** The options of a hand GET route answering raw bytes: its permission, document from the table entry, params and errors. */
export function bytesRouteOptions<P extends TSchema>(
  permission: OperationName,
  spec: Pick<OperationSpec, 'summary'> & { http: HttpBinding },
  params: P,
  body: { description: string; contentType: string },
  codes: ErrorCode[],
) {
  const content = { [body.contentType]: { schema: Type.String({ format: 'binary' }) } };
  return {
    config: { permission },
    schema: { ...handRouteDocument(spec), params, response: { 200: { description: body.description, content }, ...errorResponses(...codes) } },
  };
}

/** Codes every call to an agent can produce. */
export const AgentCallCodes: ErrorCode[] = ['NO_NODE', 'AGENT_UNREACHABLE', 'OPERATION_TIMEOUT', 'OPERATION_FAILED'];
/** Codes of calls addressing one domain. */
export const DomainCallCodes: ErrorCode[] = [...AgentCallCodes, ...ObjectErrors.domain];

import Type, { type TSchema } from 'typebox';
import * as Contract from '@virtbus/api-contract';
import { AsyncOperation, AsyncOperationList, DomainId, ErrorBody, ErrorStatus, NodeName, SseErrorEvent, SseEventFamilies, type ErrorCode } from '@virtbus/api-contract';

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

/** Codes every call to an agent can produce. */
export const AgentCallCodes: ErrorCode[] = ['NO_NODE', 'AGENT_UNREACHABLE', 'OPERATION_TIMEOUT', 'OPERATION_FAILED'];
/** Codes of calls addressing one domain. */
export const DomainCallCodes: ErrorCode[] = [...AgentCallCodes, 'NO_DOMAIN', 'OPERATION_INVALID', 'OPERATION_UNSUPPORTED'];

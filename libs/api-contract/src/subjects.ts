import { VirtError } from './errors.js';
import { isNodeName } from './names.js';

/** Every NATS subject, stream and bucket name of API v1 is built here and nowhere else. */
export const SUBJECT_ROOT = 'virt.v1';
export const AGENT_SERVICE_NAME = 'virt-agent';
export const EVENTS_STREAM = 'VIRT_EVENTS';
export const NODES_BUCKET = 'virt_nodes';
/**
 * NATS headers on every published event: when the agent recorded it (emitted) and handed it to the bus (published), each
 * in microseconds since the epoch on the agent's clock (the event's `timestamp` has 1 ms resolution). Emitted is absent
 * for an event recorded before an agent restart.
 */
export const EventTimeHeaders = { emitted: 'Virt-Emitted-Us', published: 'Virt-Published-Us' } as const;

/** Read, write and agent-to-agent verbs sit under different tokens so nats-server permissions can split them. */
export const Access = { ReadOnly: 'ro', ReadWrite: 'rw', Peer: 'peer' } as const;
export type Access = (typeof Access)[keyof typeof Access];

function token(value: string, what: string): string {
  if (!value || /[\s.*>]/.test(value)) throw new VirtError('INVALID_ARG', `invalid ${what} for a subject: ${JSON.stringify(value)}`);
  return value;
}

/** A leading `_` is not a valid node name, so audit subjects never overlap a node's subjects. */
export const AUDIT_TOKEN = '_audit';
/** Tokens that would let node-wide wildcards such as `virt.v1.*.stats` match an audit subject. */
const RESERVED_AUDIT_SOURCES = new Set(['ro', 'rw', 'events', 'stats', 'console', 'audit']);

function auditSource(name: string): string {
  if (!isNodeName(name) || RESERVED_AUDIT_SOURCES.has(name)) throw new VirtError('INVALID_ARG', `invalid audit source (gateway id): ${JSON.stringify(name)}`);
  return name;
}

function node(name: string): string {
  if (!isNodeName(name)) throw new VirtError('INVALID_ARG', `invalid node name: ${JSON.stringify(name)}`);
  return name;
}

/** Headers on `Subjects.consoleOutput` messages: one with `End` carries no output, the session is over and its value says why. */
export const ConsoleHeaders = { End: 'virtbus-console-end' } as const;

export const Subjects = {
  request: (nodeName: string, access: Access, operation: string) => `${SUBJECT_ROOT}.${node(nodeName)}.${access}.${operation}`,
  nodeRequests: (nodeName: string) => `${SUBJECT_ROOT}.${node(nodeName)}.>`,
  nodeAccess: (nodeName: string, access: Access) => `${SUBJECT_ROOT}.${node(nodeName)}.${access}.>`,
  allAccess: (access: Access) => `${SUBJECT_ROOT}.*.${access}.>`,
  domainEvent: (nodeName: string, uuid: string, type: string) =>
    `${SUBJECT_ROOT}.${node(nodeName)}.events.domain.${token(uuid, 'uuid')}.${token(type, 'event type')}`,
  nodeEvents: (nodeName: string) => `${SUBJECT_ROOT}.${node(nodeName)}.events.>`,
  allEvents: `${SUBJECT_ROOT}.*.events.>`,
  /** Filter for domain events; an absent part matches everything. */
  domainEventFilter: (filter: { node?: string; uuid?: string; type?: string }) =>
    `${SUBJECT_ROOT}.${filter.node ? node(filter.node) : '*'}.events.domain.${filter.uuid ? token(filter.uuid, 'uuid') : '*'}.${
      filter.type ? token(filter.type, 'event type') : '*'
    }`,
  /** Filter for one family of events (`all`: every family, present and future); an absent node matches every node. */
  eventKindFilter: (filter: { node?: string; kind: 'pool' | 'network' | 'snapshot' | 'operation' | 'graphics' | 'domainevent' | 'all' }) =>
    `${SUBJECT_ROOT}.${filter.node ? node(filter.node) : '*'}.events.${filter.kind === 'all' ? '>' : `${filter.kind}.>`}`,
  poolEvent: (nodeName: string, pool: string, type: string) =>
    `${SUBJECT_ROOT}.${node(nodeName)}.events.pool.${token(pool, 'pool name')}.${token(type, 'event type')}`,
  networkEvent: (nodeName: string, network: string, type: string) =>
    `${SUBJECT_ROOT}.${node(nodeName)}.events.network.${token(network, 'network name')}.${token(type, 'event type')}`,
  snapshotEvent: (nodeName: string, uuid: string, type: string) =>
    `${SUBJECT_ROOT}.${node(nodeName)}.events.snapshot.${token(uuid, 'uuid')}.${token(type, 'event type')}`,
  graphicsEvent: (nodeName: string, uuid: string, type: string) =>
    `${SUBJECT_ROOT}.${node(nodeName)}.events.graphics.${token(uuid, 'uuid')}.${token(type, 'event type')}`,
  /** A domain event beyond the lifecycle (DomainEvent): its libvirt event id name is the last token. */
  domainDetailEvent: (nodeName: string, uuid: string, event: string) =>
    `${SUBJECT_ROOT}.${node(nodeName)}.events.domainevent.${token(uuid, 'uuid')}.${token(event, 'event name')}`,
  /** One VNC viewer session's server bytes. */
  graphicsOutput: (nodeName: string, uuid: string, session: string) => `${SUBJECT_ROOT}.${node(nodeName)}.graphics.${token(uuid, 'uuid')}.${token(session, 'session')}`,
  operationEvent: (nodeName: string, id: string) => `${SUBJECT_ROOT}.${node(nodeName)}.events.operation.${token(id, 'operation id')}`,
  /** Volume content sessions: uploads write (rw), downloads read (ro), so permissions apply as for requests. */
  uploadSession: (nodeName: string, session: string) => `${SUBJECT_ROOT}.${node(nodeName)}.rw.stream.upload.${token(session, 'session')}`,
  downloadSession: (nodeName: string, session: string) => `${SUBJECT_ROOT}.${node(nodeName)}.ro.stream.download.${token(session, 'session')}`,
  /** Agent-to-agent requests (migration): only agents may send them, only the named node's agent answers. */
  peerRequest: (nodeName: string, service: string, verb: string) => `${SUBJECT_ROOT}.${node(nodeName)}.peer.${token(service, 'service')}.${token(verb, 'verb')}`,
  nodePeerRequests: (nodeName: string) => `${SUBJECT_ROOT}.${node(nodeName)}.peer.>`,
  allPeerRequests: `${SUBJECT_ROOT}.*.peer.>`,
  stats: (nodeName: string) => `${SUBJECT_ROOT}.${node(nodeName)}.stats`,
  consoleOutput: (nodeName: string, uuid: string) => `${SUBJECT_ROOT}.${node(nodeName)}.console.${token(uuid, 'uuid')}.out`,
  /** Audit records of one gateway (its id has the node-name syntax). */
  audit: (gatewayId: string) => `${SUBJECT_ROOT}.${AUDIT_TOKEN}.${auditSource(gatewayId)}`,
  allAudit: `${SUBJECT_ROOT}.${AUDIT_TOKEN}.>`,
} as const;

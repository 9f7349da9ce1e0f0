import {
  Access,
  AGENT_SERVICE_NAME,
  AUDIT_TOKEN,
  ErrorStatus,
  EVENTS_STREAM,
  LifecycleDetails,
  NODES_BUCKET,
  OperationNames,
  Operations,
  StateReasons,
  SUBJECT_ROOT,
  Subjects,
} from '@virtbus/api-contract';
import { buildApp } from '@virtbus/gateway';
import type { ContractSnapshot, Schema } from './compare.js';

/** Placeholder tokens that pass the subject builders' checks and read as template variables afterwards. */
const Placeholder = {
  node: 'NODE',
  uuid: 'UUID',
  type: 'TYPE',
  operation: 'OPERATION',
  gateway: 'GATEWAY',
  pool: 'POOL',
  network: 'NETWORK',
  id: 'ID',
  session: 'SESSION',
  service: 'SERVICE',
  verb: 'VERB',
} as const;

function template(subject: string): string {
  const names = Object.fromEntries(Object.entries(Placeholder).map(([name, token]) => [token, `{${name}}`]));
  return subject
    .split('.')
    .map((part) => names[part] ?? part)
    .join('.');
}

const plain = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

type Builders = typeof Subjects;
/** Arguments for each builder, by snapshot key; every builder of Subjects must appear (a new one does not compile without its entry). */
type Calls = { [K in keyof Builders]: Builders[K] extends (...args: infer A) => string ? Record<string, A> : null };

const { node, uuid, type, operation, pool, network, id, session, service, verb } = Placeholder;
const Calls: Calls = {
  request: { requestRo: [node, Access.ReadOnly, operation], requestRw: [node, Access.ReadWrite, operation] },
  nodeRequests: { nodeRequests: [node] },
  nodeAccess: { nodeAccessRo: [node, Access.ReadOnly], nodeAccessRw: [node, Access.ReadWrite] },
  allAccess: { allAccessRo: [Access.ReadOnly], allAccessRw: [Access.ReadWrite] },
  domainEvent: { domainEvent: [node, uuid, type] },
  nodeEvents: { nodeEvents: [node] },
  allEvents: null,
  domainEventFilter: { domainEventFilterAll: [{}], domainEventFilter: [{ node, uuid, type }] },
  eventKindFilter: {
    eventKindFilterPool: [{ kind: 'pool' }],
    eventKindFilterNetwork: [{ kind: 'network' }],
    eventKindFilterSnapshot: [{ kind: 'snapshot' }],
    eventKindFilterOperation: [{ kind: 'operation' }],
    eventKindFilterGraphics: [{ kind: 'graphics' }],
    eventKindFilterDomainEvent: [{ kind: 'domainevent' }],
    eventKindFilterAll: [{ kind: 'all' }],
    eventKindFilterNode: [{ node, kind: 'pool' }],
  },
  poolEvent: { poolEvent: [node, pool, type] },
  networkEvent: { networkEvent: [node, network, type] },
  snapshotEvent: { snapshotEvent: [node, uuid, type] },
  graphicsEvent: { graphicsEvent: [node, uuid, type] },
  domainDetailEvent: { domainDetailEvent: [node, uuid, type] },
  graphicsOutput: { graphicsOutput: [node, uuid, session] },
  operationEvent: { operationEvent: [node, id] },
  uploadSession: { uploadSession: [node, session] },
  downloadSession: { downloadSession: [node, session] },
  peerRequest: { peerRequest: [node, service, verb] },
  nodePeerRequests: { nodePeerRequests: [node] },
  allPeerRequests: null,
  stats: { stats: [node] },
  consoleOutput: { consoleOutput: [node, uuid] },
  audit: { audit: [Placeholder.gateway] },
  allAudit: null,
};

/** Every subject of Subjects (constants under their own name, builders once per call above) and the fixed names. */
function subjectTemplates(): Record<string, string> {
  const subjects: Record<string, string> = {
    root: SUBJECT_ROOT,
    agentService: AGENT_SERVICE_NAME,
    eventsStream: EVENTS_STREAM,
    nodesBucket: NODES_BUCKET,
    auditToken: AUDIT_TOKEN,
  };
  for (const [name, builder] of Object.entries(Subjects) as [keyof Builders, Builders[keyof Builders]][]) {
    if (typeof builder === 'string') {
      subjects[name] = template(builder);
      continue;
    }
    const calls = Calls[name] as Record<string, unknown[]> | null;
    if (!calls) throw new Error(`contract snapshot: no arguments for the subject builder ${name}`);
    for (const [key, args] of Object.entries(calls)) subjects[key] = template((builder as (...values: unknown[]) => string)(...args));
  }
  return subjects;
}

/** The whole stable surface: the HTTP document plus everything agents and clients agree on over NATS. */
export async function buildSnapshot(): Promise<ContractSnapshot> {
  const app = await buildApp({
    nc: () => {
      throw new Error('the contract snapshot never talks to NATS');
    },
    logger: false,
  });
  try {
    await app.ready();
    const openapi = plain(app.swagger()) as ContractSnapshot['openapi'];
    const operations: ContractSnapshot['operations'] = {};
    for (const name of OperationNames) {
      const spec = Operations[name];
      operations[name] = {
        access: spec.access,
        subject: template(Subjects.request(Placeholder.node, spec.access, name)),
        request: plain(spec.request) as Schema,
        response: plain(spec.response) as Schema,
      };
    }
    return {
      openapi,
      errorCodes: { ...ErrorStatus },
      subjects: subjectTemplates(),
      operations,
      lifecycle: plain(LifecycleDetails) as ContractSnapshot['lifecycle'],
      states: plain(StateReasons) as ContractSnapshot['states'],
    };
  } finally {
    await app.close();
  }
}

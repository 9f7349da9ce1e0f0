import {
  Access,
  AGENT_SERVICE_NAME,
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
const Placeholder = { node: 'NODE', uuid: 'UUID', type: 'TYPE', operation: 'OPERATION', gateway: 'GATEWAY' } as const;

function template(subject: string): string {
  const names = Object.fromEntries(Object.entries(Placeholder).map(([name, token]) => [token, `{${name}}`]));
  return subject
    .split('.')
    .map((part) => names[part] ?? part)
    .join('.');
}

const plain = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

function subjectTemplates(): Record<string, string> {
  const { node, uuid, type, operation } = Placeholder;
  return {
    root: SUBJECT_ROOT,
    agentService: AGENT_SERVICE_NAME,
    eventsStream: EVENTS_STREAM,
    nodesBucket: NODES_BUCKET,
    requestRo: template(Subjects.request(node, Access.ReadOnly, operation)),
    requestRw: template(Subjects.request(node, Access.ReadWrite, operation)),
    nodeRequests: template(Subjects.nodeRequests(node)),
    nodeAccessRo: template(Subjects.nodeAccess(node, Access.ReadOnly)),
    nodeAccessRw: template(Subjects.nodeAccess(node, Access.ReadWrite)),
    allAccessRo: template(Subjects.allAccess(Access.ReadOnly)),
    allAccessRw: template(Subjects.allAccess(Access.ReadWrite)),
    domainEvent: template(Subjects.domainEvent(node, uuid, type)),
    nodeEvents: template(Subjects.nodeEvents(node)),
    allEvents: Subjects.allEvents,
    domainEventFilterAll: template(Subjects.domainEventFilter({})),
    domainEventFilter: template(Subjects.domainEventFilter({ node, uuid, type })),
    stats: template(Subjects.stats(node)),
    consoleOutput: template(Subjects.consoleOutput(node, uuid)),
    audit: template(Subjects.audit(Placeholder.gateway)),
    allAudit: Subjects.allAudit,
  };
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

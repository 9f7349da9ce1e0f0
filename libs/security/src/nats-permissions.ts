import { AGENT_SERVICE_NAME, Access, EVENTS_STREAM, NODES_BUCKET, SUBJECT_ROOT, Subjects, VirtError, isNodeName } from '@virtbus/api-contract';

/** A nats-server `permissions` block, serialised as-is into the server config. */
export interface NatsPermissions {
  publish: { allow: string[]; deny?: string[] };
  subscribe: { allow: string[]; deny?: string[] };
  /** Lets a responder publish to the reply subject of a request it received, and nothing else. */
  allow_responses?: boolean | { max: number; expires: string };
}

/** Bus identity kinds; the HTTP roles (roles.ts) are a separate axis enforced by the gateway. */
export const BusIdentityKind = {
  Agent: 'agent',
  Gateway: 'gateway',
  ReadOnly: 'read-only',
  Operator: 'operator',
  Admin: 'admin',
} as const;
export type BusIdentityKind = (typeof BusIdentityKind)[keyof typeof BusIdentityKind];

const KV_STREAM = `KV_${NODES_BUCKET}`;
const JS_API = '$JS.API';

/** Each identity gets its own reply inbox so nobody can subscribe to another identity's replies. */
export function inboxPrefix(identityName: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]*$/.test(identityName)) {
    throw new VirtError('INVALID_ARG', `identity name must be a single subject token: ${JSON.stringify(identityName)}`);
  }
  return `_INBOX.${identityName}`;
}

function nodeScope(nodes: readonly string[] | undefined): string[] {
  if (!nodes || nodes.length === 0) return ['*'];
  for (const node of nodes) {
    if (!isNodeName(node)) throw new VirtError('INVALID_ARG', `invalid node name: ${JSON.stringify(node)}`);
  }
  return [...nodes];
}

const serviceDiscoveryRequests = ['$SRV.>'];
const jsAccountInfo = `${JS_API}.INFO`;

/** What a reader needs to look up node records without creating consumers. */
const kvDirectRead = [
  `${JS_API}.STREAM.INFO.${KV_STREAM}`,
  `${JS_API}.DIRECT.GET.${KV_STREAM}`,
  `${JS_API}.DIRECT.GET.${KV_STREAM}.>`,
  `${JS_API}.STREAM.MSG.GET.${KV_STREAM}`,
];

/** Consumer API on one stream: ordered/ephemeral/durable create, info, pull, delete, acks and flow control. */
function consumerApi(stream: string): string[] {
  return [
    `${JS_API}.STREAM.INFO.${stream}`,
    `${JS_API}.CONSUMER.CREATE.${stream}`,
    `${JS_API}.CONSUMER.CREATE.${stream}.>`,
    `${JS_API}.CONSUMER.DURABLE.CREATE.${stream}.*`,
    `${JS_API}.CONSUMER.INFO.${stream}.*`,
    `${JS_API}.CONSUMER.DELETE.${stream}.*`,
    `${JS_API}.CONSUMER.MSG.NEXT.${stream}.*`,
    `$JS.ACK.${stream}.>`,
    `$JS.FC.${stream}.>`,
  ];
}

function liveReadSubjects(nodes: string[]): string[] {
  return nodes.flatMap((node) => [
    `${SUBJECT_ROOT}.${node}.events.>`,
    `${SUBJECT_ROOT}.${node}.stats`,
    `${SUBJECT_ROOT}.${node}.console.*.out`,
  ]);
}

function requestSubjects(nodes: string[], access: Access): string[] {
  return nodes.map((node) => `${SUBJECT_ROOT}.${node}.${access}.>`);
}

export interface AgentPermissionOptions {
  /**
   * Let the agent create VIRT_EVENTS and the virt_nodes bucket when they are missing (zero-ops start).
   * Updating or deleting them is admin-only: a widened subject filter would capture other nodes' traffic.
   */
  createStreams?: boolean;
}

/** An agent serves and publishes only under its own node: it cannot answer, or publish events for, another node. */
export function agentPermissions(node: string, identityName: string, options: AgentPermissionOptions = {}): NatsPermissions {
  const [own] = nodeScope([node]) as [string];
  const createStreams = options.createStreams ?? true;
  return {
    publish: {
      allow: [
        // events, stats and console output of its own node (JetStream captures events from here)
        Subjects.nodeRequests(own),
        jsAccountInfo,
        `${JS_API}.STREAM.INFO.${EVENTS_STREAM}`,
        `${JS_API}.STREAM.INFO.${KV_STREAM}`,
        ...(createStreams ? [`${JS_API}.STREAM.CREATE.${EVENTS_STREAM}`, `${JS_API}.STREAM.CREATE.${KV_STREAM}`] : []),
        `$KV.${NODES_BUCKET}.${own}`,
        `${JS_API}.DIRECT.GET.${KV_STREAM}.$KV.${NODES_BUCKET}.${own}`,
        `${JS_API}.STREAM.MSG.GET.${KV_STREAM}`,
        // agent-to-agent requests (the table's access peer verbs) to any node; only that node's agent subscribes
        Subjects.allAccess(Access.Peer),
      ],
      deny: [Subjects.nodeAccess(own, Access.ReadOnly), Subjects.nodeAccess(own, Access.ReadWrite)],
    },
    subscribe: {
      allow: [
        Subjects.nodeAccess(own, Access.ReadOnly),
        Subjects.nodeAccess(own, Access.ReadWrite),
        Subjects.nodeAccess(own, Access.Peer),
        // @nats-io/services answers PING/INFO/STATS on all, by-name and by-id subjects
        '$SRV.PING',
        '$SRV.INFO',
        '$SRV.STATS',
        `$SRV.*.${AGENT_SERVICE_NAME}`,
        `$SRV.*.${AGENT_SERVICE_NAME}.*`,
        `${inboxPrefix(identityName)}.>`,
      ],
    },
    allow_responses: true,
  };
}

/** The gateway sends any request to any agent, discovers services and reads events through JetStream consumers. */
export function gatewayPermissions(identityName: string): NatsPermissions {
  return {
    publish: {
      allow: [
        Subjects.allAccess(Access.ReadOnly),
        Subjects.allAccess(Access.ReadWrite),
        // audit records of every mutating HTTP call (virt.v1._audit.<gateway-id>); no node can be named `_audit`
        Subjects.allAudit,
        ...serviceDiscoveryRequests,
        jsAccountInfo,
        ...consumerApi(EVENTS_STREAM),
        ...kvDirectRead,
        ...consumerApi(KV_STREAM),
        // the node list's registry watch is a flow-controlled push consumer: it must answer flow control
        `$JS.FC.${KV_STREAM}.>`,
      ],
    },
    // and each VNC viewer session's server bytes, which it relays to a WebSocket
    subscribe: { allow: [...liveReadSubjects(['*']), `${SUBJECT_ROOT}.*.graphics.*.*`, `${inboxPrefix(identityName)}.>`] },
  };
}

export interface ClientPermissionOptions {
  /** Limit the identity to these nodes; all nodes when absent. */
  nodes?: readonly string[];
}

/**
 * Read verbs only. No consumer API: a push consumer's deliver subject is not covered by subject permissions,
 * so a consumer could be made to deliver into another node's request subjects; live events come over core NATS.
 */
export function readOnlyPermissions(identityName: string, options: ClientPermissionOptions = {}): NatsPermissions {
  const nodes = nodeScope(options.nodes);
  return {
    publish: { allow: [...requestSubjects(nodes, Access.ReadOnly), ...serviceDiscoveryRequests, jsAccountInfo, ...kvDirectRead] },
    subscribe: { allow: [...liveReadSubjects(nodes), `${inboxPrefix(identityName)}.>`] },
  };
}

/** Read and write verbs; nats cannot tell lifecycle from define, so operator and admin differ only in stream management. */
export function operatorPermissions(identityName: string, options: ClientPermissionOptions = {}): NatsPermissions {
  const nodes = nodeScope(options.nodes);
  const readOnly = readOnlyPermissions(identityName, options);
  return {
    publish: { allow: [...requestSubjects(nodes, Access.ReadWrite), ...readOnly.publish.allow] },
    subscribe: readOnly.subscribe,
  };
}

/** Everything an operator may do plus managing the stream, the bucket and their consumers. */
export function adminPermissions(identityName: string): NatsPermissions {
  const operator = operatorPermissions(identityName);
  return {
    publish: { allow: [...operator.publish.allow, `${JS_API}.>`, '$JS.ACK.>', '$JS.FC.>', `$KV.${NODES_BUCKET}.>`] },
    // reading the audit trail is an admin matter (PermissionClass.Audit)
    subscribe: { allow: [...operator.subscribe.allow, Subjects.allAudit] },
  };
}

export type BusIdentity =
  | { kind: typeof BusIdentityKind.Agent; name: string; node: string; createStreams?: boolean }
  | { kind: typeof BusIdentityKind.Gateway; name: string }
  | { kind: typeof BusIdentityKind.ReadOnly | typeof BusIdentityKind.Operator; name: string; nodes?: readonly string[] }
  | { kind: typeof BusIdentityKind.Admin; name: string };

export function permissionsFor(identity: BusIdentity): NatsPermissions {
  switch (identity.kind) {
    case BusIdentityKind.Agent:
      return agentPermissions(identity.node, identity.name, { createStreams: identity.createStreams });
    case BusIdentityKind.Gateway:
      return gatewayPermissions(identity.name);
    case BusIdentityKind.ReadOnly:
      return readOnlyPermissions(identity.name, { nodes: identity.nodes });
    case BusIdentityKind.Operator:
      return operatorPermissions(identity.name, { nodes: identity.nodes });
    case BusIdentityKind.Admin:
      return adminPermissions(identity.name);
  }
}

import type { FastifyInstance } from 'fastify';
import { headers as natsHeaders, RequestError, TimeoutError, type NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import { Svcm } from '@nats-io/services';
import {
  AGENT_SERVICE_NAME,
  compileValidator,
  ErrorBody,
  isNodeName,
  NODES_BUCKET,
  Operations,
  Subjects,
  VirtError,
  type NodeSummary,
  type OperationName,
  type OperationRequest,
  type OperationResponse,
  type Validator,
} from '@virtbus/api-contract';
import { SpanKind, withSpan } from '@virtbus/monitoring';
import { injectNoTrace, type TraceInjector } from '../trace.js';
import { shared } from './skip-override.js';

/** A NATS connection, or a way to get one on first use (so building the app needs no server). */
export type NatsSource = NatsConnection | (() => NatsConnection | Promise<NatsConnection>);

export interface CallOptions {
  timeoutMs?: number;
}

export interface AgentClient {
  call<N extends OperationName>(node: string, operation: N, request: OperationRequest<N>, options?: CallOptions): Promise<OperationResponse<N>>;
  /** Live agents from the services API plus registered nodes whose agent is not answering. */
  listNodes(): Promise<NodeSummary[]>;
  isRegistered(node: string): Promise<boolean>;
  connection(): Promise<NatsConnection>;
}

export interface AgentClientOptions {
  nc: NatsSource;
  requestTimeoutMs: number;
  /** Check every reply against the operation's response schema (dev and test). */
  validateReplies: boolean;
  injectTrace?: TraceInjector;
  /** How long GET /v1/nodes waits for service info replies. */
  discoveryWaitMs?: number;
  /** Told about every bus call: target node, operation, reply code (OK or an error code) and seconds. */
  observeCall?: (node: string, operation: OperationName, code: string, seconds: number) => void;
}

declare module 'fastify' {
  interface FastifyInstance {
    agents: AgentClient;
  }
}

interface Registration {
  node?: unknown;
  version?: unknown;
}

const errorEnvelope = compileValidator(ErrorBody);

export function createAgentClient(options: AgentClientOptions): AgentClient {
  const injectTrace = options.injectTrace ?? injectNoTrace;
  const replyValidators = new Map<OperationName, Validator<unknown>>();
  let connecting: Promise<NatsConnection> | undefined;
  let bucket: Promise<KV | undefined> | undefined;

  function connection(): Promise<NatsConnection> {
    connecting ??= Promise.resolve(typeof options.nc === 'function' ? options.nc() : options.nc);
    return connecting;
  }

  function replyValidator(operation: OperationName): Validator<unknown> {
    let validator = replyValidators.get(operation);
    if (!validator) {
      validator = compileValidator(Operations[operation].response);
      replyValidators.set(operation, validator);
    }
    return validator;
  }

  async function nodesBucket(): Promise<KV | undefined> {
    // A missing bucket means no agent ever registered; retry next time instead of caching the miss.
    bucket ??= connection()
      .then((nc) => new Kvm(nc).open(NODES_BUCKET))
      .catch(() => {
        bucket = undefined;
        return undefined;
      });
    return bucket;
  }

  async function registration(node: string): Promise<Registration | undefined> {
    const kv = await nodesBucket();
    if (!kv) return undefined;
    const entry = await kv.get(node).catch(() => null);
    if (!entry || entry.operation !== 'PUT') return undefined;
    try {
      return entry.json<Registration>();
    } catch {
      return {};
    }
  }

  async function isRegistered(node: string): Promise<boolean> {
    return isNodeName(node) && (await registration(node)) !== undefined;
  }

  async function call<N extends OperationName>(
    node: string,
    operation: N,
    request: OperationRequest<N>,
    callOptions: CallOptions = {},
  ): Promise<OperationResponse<N>> {
    const started = performance.now();
    try {
      const result = await withSpan(
        `nats request ${operation}`,
        { 'rpc.system': 'nats', 'rpc.method': operation, 'virtbus.node': node },
        () => callAgent(node, operation, request, callOptions),
        { kind: SpanKind.CLIENT },
      );
      options.observeCall?.(node, operation, 'OK', (performance.now() - started) / 1000);
      return result;
    } catch (error) {
      options.observeCall?.(node, operation, VirtError.is(error) ? error.code : 'INTERNAL', (performance.now() - started) / 1000);
      throw error;
    }
  }

  async function callAgent<N extends OperationName>(
    node: string,
    operation: N,
    request: OperationRequest<N>,
    callOptions: CallOptions,
  ): Promise<OperationResponse<N>> {
    const spec = Operations[operation];
    const subject = Subjects.request(node, spec.access, operation);
    const nc = await connection();
    const headers = natsHeaders();
    injectTrace(headers);
    const timeout = callOptions.timeoutMs ?? options.requestTimeoutMs;
    let data: Uint8Array;
    try {
      const reply = await nc.request(subject, JSON.stringify(request), { timeout, headers });
      data = reply.data;
    } catch (error) {
      if (error instanceof RequestError && error.isNoResponders()) {
        if (await isRegistered(node)) throw new VirtError('AGENT_UNREACHABLE', `the agent of node ${node} is not answering`, { cause: error });
        throw new VirtError('NO_NODE', `no node named ${node}`, { cause: error });
      }
      if (error instanceof TimeoutError) {
        throw new VirtError('OPERATION_TIMEOUT', `node ${node} did not answer ${operation} within ${timeout} ms`, { cause: error });
      }
      throw new VirtError('AGENT_UNREACHABLE', `request to node ${node} failed: ${(error as Error).message}`, { cause: error });
    }
    let envelope: unknown;
    try {
      envelope = JSON.parse(new TextDecoder().decode(data));
    } catch (error) {
      throw new VirtError('INTERNAL', `node ${node} sent a reply that is not JSON`, { cause: error });
    }
    if (envelope && typeof envelope === 'object' && 'error' in envelope) {
      const body = (envelope as { error: unknown }).error;
      if (!errorEnvelope.check(body)) throw new VirtError('INTERNAL', `node ${node} sent a malformed error for ${operation}`);
      throw VirtError.fromBody(body);
    }
    if (!envelope || typeof envelope !== 'object' || !('result' in envelope)) {
      throw new VirtError('INTERNAL', `node ${node} sent a reply without result or error for ${operation}`);
    }
    const result = (envelope as { result: unknown }).result;
    if (options.validateReplies) {
      const validator = replyValidator(operation);
      if (!validator.check(result)) {
        try {
          validator.parse(result);
        } catch (error) {
          throw new VirtError('INTERNAL', `reply of node ${node} to ${operation} breaks the contract: ${(error as Error).message}`, { cause: error });
        }
      }
    }
    return result as OperationResponse<N>;
  }

  async function listNodes(): Promise<NodeSummary[]> {
    const nc = await connection();
    const client = new Svcm(nc).client({ strategy: 'stall', maxWait: options.discoveryWaitMs ?? 1000, stall: 200 });
    const nodes: NodeSummary[] = [];
    const online = new Set<string>();
    try {
      for await (const info of await client.info(AGENT_SERVICE_NAME)) {
        const node = info.metadata?.['node'];
        if (!node || !isNodeName(node)) continue;
        online.add(node);
        nodes.push({ node, id: info.id, version: info.version, online: true });
      }
    } catch (error) {
      // No agent at all answers the info request with "no responders": the list is just the registered nodes.
      if (!(error instanceof RequestError && error.isNoResponders())) throw error;
    }
    const kv = await nodesBucket();
    if (kv) {
      for await (const node of await kv.keys()) {
        if (online.has(node) || !isNodeName(node)) continue;
        const registered = await registration(node);
        if (!registered) continue;
        nodes.push({ node, id: '', version: typeof registered.version === 'string' ? registered.version : '', online: false });
      }
    }
    return nodes.sort((a, b) => a.node.localeCompare(b.node) || a.id.localeCompare(b.id));
  }

  return { call, listNodes, isRegistered, connection };
}

async function agentClientPlugin(app: FastifyInstance, options: AgentClientOptions): Promise<void> {
  app.decorate('agents', createAgentClient(options));
}

export default shared(agentClientPlugin);

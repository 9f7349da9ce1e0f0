import { AsyncLocalStorage } from 'node:async_hooks';
import type { FastifyInstance } from 'fastify';
import { headers as natsHeaders, NoRespondersError, RequestError, type NatsConnection } from '@nats-io/transport-node';
import { Svcm } from '@nats-io/services';
import {
  AGENT_SERVICE_NAME,
  compileValidator,
  IDEMPOTENCY_HEADER,
  isNodeName,
  Operations,
  VirtError,
  type NodeSummary,
  type OperationName,
  type OperationRequest,
  type OperationResponse,
  type Validator,
} from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { SpanKind, withSpan } from '@virtbus/monitoring';
import { injectNoTrace, type TraceInjector } from '../trace.js';
import { shared } from './skip-override.js';

const idempotencyKeys = new AsyncLocalStorage<string>();

/** Write calls made inside `run` carry the key to the agent, which answers a repeat with its first answer. */
export function runWithIdempotencyKey<T>(key: string, run: () => T): T {
  return idempotencyKeys.run(key, run);
}

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

export function createAgentClient(options: AgentClientOptions): AgentClient {
  const injectTrace = options.injectTrace ?? injectNoTrace;
  const replyValidators = new Map<OperationName, Validator<unknown>>();
  let connecting: Promise<NatsConnection> | undefined;
  let virtClient: Promise<VirtClient> | undefined;

  function connection(): Promise<NatsConnection> {
    connecting ??= Promise.resolve(typeof options.nc === 'function' ? options.nc() : options.nc);
    return connecting;
  }

  function client(): Promise<VirtClient> {
    virtClient ??= connection().then((nc) => new VirtClient(nc, options.requestTimeoutMs));
    return virtClient;
  }

  function replyValidator(operation: OperationName): Validator<unknown> {
    let validator = replyValidators.get(operation);
    if (!validator) {
      validator = compileValidator(Operations[operation].response);
      replyValidators.set(operation, validator);
    }
    return validator;
  }

  async function isRegistered(node: string): Promise<boolean> {
    return (await client()).isRegistered(node);
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
    const headers = natsHeaders();
    injectTrace(headers);
    const idempotencyKey = idempotencyKeys.getStore();
    if (idempotencyKey && Operations[operation].access === 'rw') headers.set(IDEMPOTENCY_HEADER, idempotencyKey);
    const result = await (await client()).call(node, operation, request, { headers, ...(callOptions.timeoutMs ? { timeoutMs: callOptions.timeoutMs } : {}) });
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
    return result;
  }

  async function listNodes(): Promise<NodeSummary[]> {
    const nc = await connection();
    const services = new Svcm(nc).client({ strategy: 'stall', maxWait: options.discoveryWaitMs ?? 1000, stall: 200 });
    const nodes: NodeSummary[] = [];
    const online = new Set<string>();
    try {
      for await (const info of await services.info(AGENT_SERVICE_NAME)) {
        const node = info.metadata?.['node'];
        if (!node || !isNodeName(node)) continue;
        online.add(node);
        nodes.push({ node, id: info.id, version: info.version, online: true });
      }
    } catch (error) {
      // No agent at all answers the info request with "no responders": the list is just the registered nodes.
      // services' info() rejects with a bare NoRespondersError rather than a RequestError
      if (!((error instanceof RequestError && error.isNoResponders()) || error instanceof NoRespondersError)) throw error;
    }
    const virt = await client();
    for (const node of await virt.registeredNodes()) {
      if (online.has(node)) continue;
      const registered = await virt.registration(node);
      if (!registered) continue;
      nodes.push({ node, id: '', version: typeof registered.version === 'string' ? registered.version : '', online: false });
    }
    return nodes.sort((a, b) => a.node.localeCompare(b.node) || a.id.localeCompare(b.id));
  }

  return { call, listNodes, isRegistered, connection };
}

async function agentClientPlugin(app: FastifyInstance, options: AgentClientOptions): Promise<void> {
  app.decorate('agents', createAgentClient(options));
}

export default shared(agentClientPlugin);

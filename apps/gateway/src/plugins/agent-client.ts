import { AsyncLocalStorage } from 'node:async_hooks';
import { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import {
  compileValidator,
  IDEMPOTENCY_HEADER,
  Operations,
  VirtError,
  type NodeSummary,
  type OperationName,
  type OperationRequest,
  type OperationResponse,
  type Validator,
} from '@virtbus/api-contract';
import { NodeRegistryCache, VirtClient } from '@virtbus/client';
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
  /** Every registered node, from the watch-fed registry cache (no agent is asked); online = recent heartbeat. */
  listNodes(): Promise<NodeSummary[]>;
  /** The registry cache once loaded; BUS_UNAVAILABLE while the bus is down or the first load takes too long. */
  loadedRegistry(): Promise<NodeRegistryCache>;
  /** The heartbeat age under which a node counts as online. */
  onlineWithinSeconds(): Promise<number>;
  /** The watch-fed node registry cache (started on first use). */
  registry(): Promise<NodeRegistryCache>;
  close(): Promise<void>;
  isRegistered(node: string): Promise<boolean>;
  connection(): Promise<NatsConnection>;
  /** The connection while it is up; BUS_UNAVAILABLE (503) at once while it reconnects. */
  liveConnection(): Promise<NatsConnection>;
  /** When the bus connection went down (ms since the epoch); undefined while connected. */
  busDownSince(): number | undefined;
}

export interface AgentClientOptions {
  nc: NatsSource;
  requestTimeoutMs: number;
  /** Check every reply against the operation's response schema (dev and test). */
  validateReplies: boolean;
  injectTrace?: TraceInjector;
  /** How long GET /v1/nodes waits for the node registry's first load, at least 5 s (then 503 BUS_UNAVAILABLE). */
  discoveryWaitMs?: number;
  /** A node is online while its last heartbeat is younger than this (15 s by default). */
  onlineWithinMs?: number;
  /** Told about every bus call: target node, operation, reply code (OK or an error code) and seconds. */
  observeCall?: (node: string, operation: OperationName, code: string, seconds: number) => void;
}

const REGISTRY_LOAD_WAIT_MS = 5000;

/** The socket under a nats.js connection (an internal of its node transport; undefined if that ever changes). */
function busSocket(nc: NatsConnection): Socket | undefined {
  const socket = (nc as unknown as { protocol?: { transport?: { socket?: unknown } } }).protocol?.transport?.socket;
  return socket instanceof Socket && !socket.destroyed ? socket : undefined;
}

/**
 * Holds the bus socket's writes until the end of this event-loop turn while other calls are out, so the requests of every
 * HTTP call that arrived in it leave in one syscall: nats.js flushes each request in its own microtask, one write each,
 * and that write was the largest CPU cost per call under load (tools/bench/gateway-profile.ts). A lone call goes at once.
 */
function coalesceTurn(): { begin: (nc: NatsConnection) => void; end: () => void } {
  let corked: Socket | undefined;
  let out = 0;
  return {
    begin: (nc) => {
      if (out++ === 0 || corked) return;
      const socket = busSocket(nc);
      if (!socket) return;
      corked = socket;
      socket.cork();
      setImmediate(() => {
        corked = undefined;
        socket.uncork();
      });
    },
    end: () => {
      out--;
    },
  };
}

declare module 'fastify' {
  interface FastifyInstance {
    agents: AgentClient;
  }
}

export function createAgentClient(options: AgentClientOptions): AgentClient {
  const injectTrace = options.injectTrace ?? injectNoTrace;
  const coalesce = coalesceTurn();
  const replyValidators = new Map<OperationName, Validator<unknown>>();
  let connecting: Promise<NatsConnection> | undefined;
  let virtClient: Promise<VirtClient> | undefined;
  let nodeRegistry: Promise<NodeRegistryCache> | undefined;

  // whether the connection is up right now: while it reconnects, calls fail fast instead of queueing until a timeout
  let busDown: { since: number } | undefined;

  function connection(): Promise<NatsConnection> {
    connecting ??= Promise.resolve(typeof options.nc === 'function' ? options.nc() : options.nc).then((nc) => {
      void (async () => {
        for await (const status of nc.status()) {
          if (status.type === 'disconnect' || status.type === 'close') busDown ??= { since: Date.now() };
          else if (status.type === 'reconnect') busDown = undefined;
        }
      })().catch(() => undefined);
      if (nc.isClosed()) busDown = { since: Date.now() };
      return nc;
    });
    return connecting;
  }

  function busUnavailable(): VirtError | undefined {
    if (!busDown) return undefined;
    return new VirtError('BUS_UNAVAILABLE', `the gateway has been disconnected from the NATS bus for ${Math.round((Date.now() - busDown.since) / 1000)} s; it keeps reconnecting`);
  }

  /** The connection, or BUS_UNAVAILABLE at once while it is down (or could not be made). */
  async function liveConnection(): Promise<NatsConnection> {
    let nc: NatsConnection;
    try {
      nc = await connection();
    } catch (error) {
      connecting = undefined;
      throw new VirtError('BUS_UNAVAILABLE', `no connection to the NATS bus: ${(error as Error).message}`, { cause: error });
    }
    const down = busUnavailable();
    if (down) throw down;
    return nc;
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
      void nodeRegistry?.then((cache) => cache.markReachable(node), () => undefined);
      return result;
    } catch (error) {
      options.observeCall?.(node, operation, VirtError.is(error) ? error.code : 'INTERNAL', (performance.now() - started) / 1000);
      // no responder on the node's subject is first-hand news that its agent is gone: list it offline until it beats again
      if (VirtError.is(error, 'AGENT_UNREACHABLE') && (error.cause as { isNoResponders?: () => boolean } | undefined)?.isNoResponders?.()) {
        void nodeRegistry?.then((cache) => cache.markUnreachable(node), () => undefined);
      }
      throw error;
    }
  }

  async function callAgent<N extends OperationName>(
    node: string,
    operation: N,
    request: OperationRequest<N>,
    callOptions: CallOptions,
  ): Promise<OperationResponse<N>> {
    const nc = await liveConnection();
    coalesce.begin(nc);
    try {
      const headers = natsHeaders();
      injectTrace(headers);
      const idempotencyKey = idempotencyKeys.getStore();
      if (idempotencyKey && Operations[operation].access === 'rw') headers.set(IDEMPOTENCY_HEADER, idempotencyKey);
      let result: OperationResponse<N>;
      try {
        // an empty header block still costs an HPUB and the agent's header parse on every call
        const withHeaders = headers.keys().length > 0 ? { headers } : {};
        result = await (await client()).call(node, operation, request, { ...withHeaders, ...(callOptions.timeoutMs ? { timeoutMs: callOptions.timeoutMs } : {}) });
      } catch (error) {
        // the connection dropped while the call was out: the agent is not to blame
        const down = busUnavailable();
        if (down && !VirtError.is(error, 'NO_NODE')) throw new VirtError('BUS_UNAVAILABLE', down.message, { cause: error });
        throw error;
      }
      if (options.validateReplies) checkReply(node, operation, result);
      return result;
    } finally {
      coalesce.end();
    }
  }

  function checkReply(node: string, operation: OperationName, result: unknown): void {
    const validator = replyValidator(operation);
    if (validator.check(result)) return;
    try {
      validator.parse(result);
    } catch (error) {
      throw new VirtError('INTERNAL', `reply of node ${node} to ${operation} breaks the contract: ${(error as Error).message}`, { cause: error });
    }
  }

  function registry(): Promise<NodeRegistryCache> {
    nodeRegistry ??= connection().then((nc) => {
      const cache = new NodeRegistryCache(nc, options.onlineWithinMs ? { onlineWithinMs: options.onlineWithinMs } : {});
      cache.start();
      return cache;
    });
    return nodeRegistry;
  }

  async function loadedRegistry(): Promise<NodeRegistryCache> {
    await liveConnection();
    const cache = await registry();
    // older callers passed the fan-out's reply wait (50–500 ms); a first registry load gets at least 5 s
    const waitMs = Math.max(options.discoveryWaitMs ?? 0, REGISTRY_LOAD_WAIT_MS);
    if (!(await cache.ready(waitMs))) throw new VirtError('BUS_UNAVAILABLE', `the node registry did not load within ${waitMs} ms`);
    return cache;
  }

  async function listNodes(): Promise<NodeSummary[]> {
    return (await loadedRegistry()).summaries();
  }

  async function onlineWithinSeconds(): Promise<number> {
    return (await registry()).onlineWithinSeconds;
  }

  async function close(): Promise<void> {
    const cache = nodeRegistry;
    nodeRegistry = undefined;
    await (await cache?.catch(() => undefined))?.close();
  }

  return { call, listNodes, loadedRegistry, onlineWithinSeconds, registry, isRegistered, connection, liveConnection, busDownSince: () => busDown?.since, close };
}

async function agentClientPlugin(app: FastifyInstance, options: AgentClientOptions): Promise<void> {
  const agents = createAgentClient(options);
  app.decorate('agents', agents);
  app.addHook('onClose', () => agents.close());
}

export default shared(agentClientPlugin);

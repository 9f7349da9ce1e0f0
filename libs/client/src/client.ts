import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { request, type RequestOptions } from './rpc.js';
import {
  NODES_BUCKET,
  Operations,
  Subjects,
  VirtError,
  isNodeName,
  type AsyncOperation,
  type MigrationRequest,
  type OperationName,
  type OperationRequest,
  type OperationResponse,
} from '@virtbus/api-contract';

export interface CallOptions {
  timeoutMs?: number;
  /** Message headers (trace context, identity). */
  headers?: MsgHdrs | Record<string, string>;
  /** The error when nobody answers, instead of reading the node registry (which an agent's bus identity may not read). */
  noResponders?: RequestOptions['noResponders'];
}

export interface NodeRegistration {
  node?: unknown;
  version?: unknown;
  registeredAt?: unknown;
}

export const DEFAULT_CALL_TIMEOUT_MS = 10_000;
/** A registry read after "no responders" (a bucket whose stream is still being set up does not answer direct gets). */
const REGISTRY_READ_TIMEOUT_MS = 2_000;

function toHeaders(value: CallOptions['headers']): MsgHdrs | undefined {
  if (!value) return undefined;
  if (typeof (value as MsgHdrs).set === 'function' && typeof (value as MsgHdrs).get === 'function') return value as MsgHdrs;
  const entries = Object.entries(value as Record<string, string>);
  if (entries.length === 0) return undefined;
  const headers = natsHeaders();
  for (const [key, text] of entries) headers.set(key, text);
  return headers;
}

/** Calls agents' operations over NATS: typed requests in, typed results or VirtErrors out. */
export class VirtClient {
  private bucket: Promise<KV | undefined> | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly defaultTimeoutMs = DEFAULT_CALL_TIMEOUT_MS,
  ) {}

  async call<N extends OperationName>(node: string, operation: N, body: OperationRequest<N>, options: CallOptions = {}): Promise<OperationResponse<N>> {
    if (!isNodeName(node)) throw new VirtError('INVALID_ARG', `invalid node name ${JSON.stringify(node)}`);
    const subject = Subjects.request(node, Operations[operation].access, operation);
    const headers = toHeaders(options.headers);
    return (await request(this.nc, subject, body, {
      timeoutMs: options.timeoutMs ?? this.defaultTimeoutMs,
      ...(headers ? { headers } : {}),
      callee: `node ${node} (${operation})`,
      // a node that registered once is down; one that never did does not exist
      noResponders: options.noResponders ?? (async (error) => {
        const known = await this.isRegistered(node);
        return new VirtError(known ? 'AGENT_UNREACHABLE' : 'NO_NODE', known ? `the agent of node ${node} is not answering` : `no node named ${node}`, { cause: error });
      }),
    })) as OperationResponse<N>;
  }

  /**
   * Migrates a domain the way the gateway does: the destination issues a one-time ticket (`migration.accept`, which
   * needs write access to both nodes) and the source hands it on; without one the destination refuses.
   */
  async migrate(node: string, id: string, migration: MigrationRequest, options: CallOptions = {}): Promise<AsyncOperation> {
    const { uuid } = await this.call(node, 'domain.get', { id }, options);
    const { ticket } = await this.call(migration.destination, 'migration.accept', { uuid, source: node }, options);
    return this.call(node, 'domain.migrate', { id: uuid, migration, ticket }, options);
  }

  /** What the node's agent wrote when it registered; undefined for a node that never existed. */
  async registration(node: string): Promise<NodeRegistration | undefined> {
    if (!isNodeName(node)) return undefined;
    let entry: KvEntry | null | undefined;
    try {
      entry = await (await this.nodesBucket())?.get(node);
    } catch (error) {
      // the registry cannot be read right now (a server lost, a leader being elected): a known-but-down 503 is the
      // honest answer, a 404 would tell the caller the node does not exist
      if (!/stream not found/i.test(String((error as Error).message))) return {};
      this.bucket = undefined;
      return undefined;
    }
    if (!entry || entry.operation !== 'PUT') return undefined;
    try {
      return entry.json<NodeRegistration>();
    } catch {
      return {};
    }
  }

  /** Whether an agent ever registered this node (distinguishes "down" from "never existed"). */
  async isRegistered(node: string): Promise<boolean> {
    return (await this.registration(node)) !== undefined;
  }

  async registeredNodes(): Promise<string[]> {
    const kv = await this.nodesBucket();
    if (!kv) return [];
    const names: string[] = [];
    try {
      for await (const key of await kv.keys()) if (isNodeName(key)) names.push(key);
    } catch (error) {
      // open() does not check that the bucket exists: before any agent registered, listing finds no stream
      if (!/stream not found/i.test(String((error as Error).message))) throw error;
      this.bucket = undefined;
      return [];
    }
    return names.sort();
  }

  private nodesBucket(): Promise<KV | undefined> {
    // A missing bucket means no agent registered yet: try again next time rather than remember the miss.
    this.bucket ??= this.openNodesBucket().then(
      (kv) => {
        if (!kv) this.bucket = undefined;
        return kv;
      },
      (error: unknown) => {
        this.bucket = undefined;
        throw error;
      },
    );
    return this.bucket;
  }

  /**
   * The registry bucket read with direct gets, or undefined when it does not exist yet (a stream-name lookup, since a
   * direct get on a missing stream only times out): a STREAM.MSG.GET racing the bucket's creation by a starting agent
   * crashes nats-server 2.9.10 (Debian 12: the stream is listed before its store exists).
   */
  private async openNodesBucket(): Promise<KV | undefined> {
    const options = { timeout: REGISTRY_READ_TIMEOUT_MS, checkAPI: false };
    const jsm = await jetstreamManager(this.nc, options);
    const names = await jsm.streams.names(`$KV.${NODES_BUCKET}.>`).next();
    if (!names.includes(`KV_${NODES_BUCKET}`)) return undefined;
    return new Kvm(jetstream(this.nc, options)).open(NODES_BUCKET, { allow_direct: true });
  }
}

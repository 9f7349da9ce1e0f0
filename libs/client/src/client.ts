import { Kvm } from '@nats-io/kv';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import {
  NODES_BUCKET,
  Operations,
  Subjects,
  VirtError,
  isErrorCode,
  isNodeName,
  type OperationName,
  type OperationRequest,
  type OperationResponse,
} from '@virtbus/api-contract';

export interface CallOptions {
  timeoutMs?: number;
  /** Extra message headers (trace context, identity). */
  headers?: Record<string, string>;
}

export const DEFAULT_CALL_TIMEOUT_MS = 10_000;

function errorCodeOf(error: unknown): string {
  const { code, message } = error as { code?: unknown; message?: unknown };
  return `${String(code ?? '')} ${String(message ?? '')}`;
}

/** Calls agents' operations over NATS: typed requests in, typed results or VirtErrors out. */
export class VirtClient {
  constructor(private readonly nc: NatsConnection) {}

  async call<N extends OperationName>(node: string, operation: N, request: OperationRequest<N>, options: CallOptions = {}): Promise<OperationResponse<N>> {
    if (!isNodeName(node)) throw new VirtError('INVALID_ARG', `invalid node name ${JSON.stringify(node)}`);
    const spec = Operations[operation];
    const subject = Subjects.request(node, spec.access, operation);
    let hdrs;
    if (options.headers && Object.keys(options.headers).length > 0) {
      hdrs = natsHeaders();
      for (const [key, value] of Object.entries(options.headers)) hdrs.set(key, value);
    }
    let reply;
    try {
      reply = await this.nc.request(subject, JSON.stringify(request), { timeout: options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS, headers: hdrs });
    } catch (error) {
      const text = errorCodeOf(error);
      if (/no responders|503/i.test(text)) {
        const known = await this.isRegistered(node);
        throw new VirtError(
          known ? 'AGENT_UNREACHABLE' : 'NO_NODE',
          known ? `the agent of node ${node} is not answering` : `no node named ${node}`,
          { cause: error },
        );
      }
      if (/timeout/i.test(text)) throw new VirtError('OPERATION_TIMEOUT', `node ${node} did not answer ${operation} in time`, { cause: error });
      throw new VirtError('AGENT_UNREACHABLE', `could not reach node ${node}: ${String((error as Error).message)}`, { cause: error });
    }
    return decodeReply(reply.data) as OperationResponse<N>;
  }

  /** Whether an agent ever registered this node (distinguishes "down" from "never existed"). */
  async isRegistered(node: string): Promise<boolean> {
    try {
      const kv = await new Kvm(this.nc).open(NODES_BUCKET);
      const entry = await kv.get(node);
      return !!entry && entry.operation === 'PUT';
    } catch {
      return false;
    }
  }

  async registeredNodes(): Promise<string[]> {
    try {
      const kv = await new Kvm(this.nc).open(NODES_BUCKET);
      const names: string[] = [];
      for await (const key of await kv.keys()) names.push(key);
      return names.sort();
    } catch {
      return [];
    }
  }
}

export function decodeReply(data: Uint8Array): unknown {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(data));
  } catch (error) {
    throw new VirtError('INTERNAL', 'agent sent a reply that is not JSON', { cause: error });
  }
  if (body && typeof body === 'object') {
    if ('result' in body) return (body as { result: unknown }).result;
    const failure = (body as { error?: { code?: unknown; message?: unknown } }).error;
    if (failure && isErrorCode(failure.code)) throw new VirtError(failure.code, String(failure.message ?? failure.code));
  }
  throw new VirtError('INTERNAL', 'agent sent a reply of unknown shape');
}

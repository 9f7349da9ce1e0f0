import { Svcm, type Service, type ServiceMsg } from '@nats-io/services';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  AGENT_SERVICE_NAME,
  Operations,
  OperationNames,
  Subjects,
  VirtError,
  compileValidator,
  type ErrorBody,
  type OperationName,
  type OperationRequest,
  type OperationResponse,
  type Validator,
} from '@virtbus/api-contract';
import type { Logger } from 'pino';

export interface MsgHeaderReader {
  get(name: string): string;
}

export interface CallContext {
  operation: OperationName;
  headers: MsgHeaderReader;
}

export type OperationHandlers = {
  [N in OperationName]: (request: OperationRequest<N>, context: CallContext) => Promise<OperationResponse<N>>;
};

export interface ServeOptions {
  nc: NatsConnection;
  node: string;
  version: string;
  handlers: OperationHandlers;
  logger: Logger;
  /** Wraps every call (tracing, metrics); must call `run`. */
  around?: <T>(context: CallContext, run: () => Promise<T>) => Promise<T>;
  onResult?: (operation: OperationName, code: string, durationMs: number) => void;
}

const validators = Object.fromEntries(OperationNames.map((name) => [name, compileValidator(Operations[name].request)])) as {
  [N in OperationName]: Validator<OperationRequest<N>>;
};

function toErrorBody(error: unknown): ErrorBody {
  if (error instanceof VirtError) return error.toBody();
  return new VirtError('INTERNAL', 'internal error').toBody();
}

function decode(msg: ServiceMsg): unknown {
  if (msg.data.length === 0) return {};
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(msg.data)) as unknown;
  } catch (error) {
    throw new VirtError('INVALID_ARG', 'request body is not valid UTF-8 JSON', { cause: error });
  }
}

/** Registers the agent as a NATS service: one endpoint per contract operation on the node's subjects. */
export async function serveOperations(options: ServeOptions): Promise<Service> {
  const { nc, node, handlers, logger } = options;
  const service = await new Svcm(nc).add({
    name: AGENT_SERVICE_NAME,
    version: options.version,
    description: `virtbus agent of node ${node}`,
    metadata: { node, api: 'v1' },
  });
  const around = options.around ?? (<T>(_context: CallContext, run: () => Promise<T>) => run());

  for (const operation of OperationNames) {
    const spec = Operations[operation];
    service.addEndpoint(operation.replaceAll('.', '_'), {
      subject: Subjects.request(node, spec.access, operation),
      metadata: { operation, access: spec.access },
      handler: (error, msg) => {
        if (error) {
          logger.error({ err: error, operation }, 'service endpoint failed');
          return;
        }
        const started = performance.now();
        const context: CallContext = { operation, headers: { get: (name) => msg.headers?.get(name) ?? '' } };
        void around(context, async () => {
          const request = validators[operation].parse(decode(msg));
          const handler = handlers[operation] as (request: unknown, context: CallContext) => Promise<unknown>;
          return handler(request, context);
        }).then(
          (result) => {
            msg.respond(JSON.stringify({ result }));
            options.onResult?.(operation, 'OK', performance.now() - started);
          },
          (failure: unknown) => {
            const body = toErrorBody(failure);
            if (body.code === 'INTERNAL') logger.error({ err: failure, operation }, 'request failed');
            // The description travels in a NATS header: a CR or LF there throws and would take the agent down.
            msg.respondError(body.status, body.message.replace(/[\r\n]+/g, ' '), JSON.stringify({ error: body }));
            options.onResult?.(operation, body.code, performance.now() - started);
          },
        );
      },
    });
  }
  return service;
}

import type { FastifyError, FastifyInstance } from 'fastify';
import { describeErrors, ErrorStatus, VirtError, type ErrorBody, type ErrorCode } from '@virtbus/api-contract';
import { shared } from './skip-override.js';

interface SchemaErrorLike {
  instancePath: string;
  message: string;
  keyword: string;
  params: unknown;
}

/** Fastify's message for a failed schema: the request part plus the most specific field errors. */
export function formatValidationErrors(errors: readonly unknown[], part: string): Error {
  return new Error(`${part}: ${describeErrors(errors as SchemaErrorLike[])}`);
}

const statusCodes: Partial<Record<number, ErrorCode>> = {
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  413: 'PAYLOAD_TOO_LARGE',
  429: 'RATE_LIMITED',
};

function body(code: ErrorCode, message: string): ErrorBody {
  return { code, message, status: ErrorStatus[code] };
}

/** Every failure becomes an ErrorBody; bad input is never a 500. */
export function toErrorBody(error: unknown): ErrorBody {
  if (VirtError.is(error)) return error.toBody();
  const fastifyError = error as Partial<FastifyError> & { validation?: unknown };
  if (fastifyError.validation) return body('INVALID_ARG', fastifyError.message ?? 'invalid request');
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return body('PAYLOAD_TOO_LARGE', 'request body is larger than the limit');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return body('INVALID_ARG', 'unsupported content type: send application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return body('INVALID_ARG', 'the JSON body is empty');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return body('INVALID_ARG', 'the body is not valid JSON');
  }
  const status = fastifyError.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    const code = statusCodes[status] ?? 'INVALID_ARG';
    return body(code, fastifyError.message || code);
  }
  return body('INTERNAL', 'internal error');
}

async function errorsPlugin(app: FastifyInstance): Promise<void> {
  app.setErrorHandler((error, request, reply) => {
    const errorBody = toErrorBody(error);
    if (errorBody.status >= 500 && errorBody.code === 'INTERNAL') request.log.error({ err: error }, 'request failed');
    else request.log.debug({ err: error, code: errorBody.code }, 'request rejected');
    return reply.code(errorBody.status).send(errorBody);
  });
  app.setNotFoundHandler((request, reply) => {
    const errorBody = body('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`);
    return reply.code(errorBody.status).send(errorBody);
  });
}

export default shared(errorsPlugin);

import Type, { type Static } from 'typebox';

/** Stable error codes of API v1 with their HTTP statuses: one table for every side. */
export const ErrorStatus = {
  INVALID_ARG: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  NO_NODE: 404,
  NO_DOMAIN: 404,
  DOMAIN_EXISTS: 409,
  NO_STORAGE_POOL: 404,
  NO_STORAGE_VOL: 404,
  STORAGE_POOL_EXISTS: 409,
  STORAGE_VOL_EXISTS: 409,
  NO_NETWORK: 404,
  NETWORK_EXISTS: 409,
  OPERATION_INVALID: 409,
  /** The destination cannot run the domain as it runs on the source (driver, machine, CPU, disks, networks). */
  MIGRATION_INCOMPATIBLE: 409,
  /** The Idempotency-Key was used before with a different request (operation or body): nothing was run. */
  IDEMPOTENCY_KEY_REUSED: 422,
  /** The request body did not arrive in time (a slow client); the connection is closed. */
  REQUEST_TIMEOUT: 408,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  OPERATION_FAILED: 500,
  /** The reply would exceed the bus max_payload; lists page instead, so this is a server-side bound (5xx), not the caller's fault. */
  REPLY_TOO_LARGE: 500,
  OPERATION_UNSUPPORTED: 501,
  /** The agent could not write its state (disk full or over quota); the change was undone. */
  STORAGE_FULL: 507,
  AGENT_UNREACHABLE: 503,
  /** The gateway has no connection to the NATS bus right now (it keeps reconnecting); retry later. */
  BUS_UNAVAILABLE: 503,
  /** The gateway is shutting down (a restart or a redeploy): nothing was run; retry, on another gateway or after it is back. */
  SHUTTING_DOWN: 503,
  OPERATION_TIMEOUT: 504,
  /** The domain's guest agent (qemu-ga) did not answer in time: not running in the guest, or the guest is busy or frozen. */
  GUEST_AGENT_UNRESPONSIVE: 503,
} as const;

export type ErrorCode = keyof typeof ErrorStatus;
export const ErrorCode = Object.fromEntries(Object.keys(ErrorStatus).map((code) => [code, code])) as {
  readonly [K in ErrorCode]: K;
};
export const ErrorCodes = Object.keys(ErrorStatus) as ErrorCode[];

export const ErrorBody = Type.Object(
  {
    code: Type.Enum(ErrorCodes, { description: 'Stable machine-readable error code' }),
    message: Type.String({ description: 'Human-readable explanation' }),
    status: Type.Integer({ minimum: 400, maximum: 599, description: 'HTTP status that goes with the code' }),
  },
  { additionalProperties: false, title: 'Error' },
);
export type ErrorBody = Static<typeof ErrorBody>;

/** The one error class of virtbus: a stable code plus the cause it came from. */
export class VirtError extends Error {
  override readonly name = 'VirtError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  get status(): number {
    return ErrorStatus[this.code];
  }

  toBody(): ErrorBody {
    return { code: this.code, message: this.message, status: this.status };
  }

  static fromBody(body: ErrorBody): VirtError {
    return new VirtError(body.code, body.message);
  }

  static is(error: unknown, code?: ErrorCode): error is VirtError {
    return error instanceof VirtError && (code === undefined || error.code === code);
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ErrorStatus, value);
}

/** JSON.parse whose failure is a VirtError with `code` and `message`, the parser's error its cause. */
export function parseJsonOr(text: string, code: ErrorCode, message: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new VirtError(code, message, { cause: error });
  }
}

import { VirtError, type ErrorCode } from '@virtbus/api-contract';
import type { RemoteError } from './protocol.js';

/** virErrorNumber values this driver tells apart, to virtbus codes; anything else is OPERATION_FAILED. */
const ErrorCodeOf: Readonly<Record<number, ErrorCode>> = {
  3: 'OPERATION_UNSUPPORTED', // VIR_ERR_NO_SUPPORT
  8: 'INVALID_ARG', // VIR_ERR_INVALID_ARG
  27: 'INVALID_ARG', // VIR_ERR_XML_ERROR
  28: 'DOMAIN_EXISTS', // VIR_ERR_DOM_EXIST
  29: 'FORBIDDEN', // VIR_ERR_OPERATION_DENIED
  35: 'INVALID_ARG', // VIR_ERR_XML_DETAIL
  42: 'NO_DOMAIN', // VIR_ERR_NO_DOMAIN
  45: 'UNAUTHORIZED', // VIR_ERR_AUTH_FAILED
  55: 'OPERATION_INVALID', // VIR_ERR_OPERATION_INVALID
  67: 'OPERATION_UNSUPPORTED', // VIR_ERR_CONFIG_UNSUPPORTED
  68: 'OPERATION_TIMEOUT', // VIR_ERR_OPERATION_TIMEOUT
  84: 'OPERATION_UNSUPPORTED', // VIR_ERR_OPERATION_UNSUPPORTED
  86: 'GUEST_AGENT_UNRESPONSIVE', // VIR_ERR_AGENT_UNRESPONSIVE
  88: 'FORBIDDEN', // VIR_ERR_ACCESS_DENIED
};

/** libvirt's error details, kept as the VirtError's cause. */
export class LibvirtRemoteError extends Error {
  override readonly name = 'LibvirtRemoteError';
  /** virErrorNumber */
  readonly libvirtCode: number;
  /** virErrorDomain */
  readonly libvirtDomain: number;

  constructor(error: RemoteError) {
    super(error.message ?? `libvirt error ${error.code}`);
    this.libvirtCode = error.code;
    this.libvirtDomain = error.domain;
  }
}

export function virtErrorFromRemote(error: RemoteError, procedure: string): VirtError {
  const cause = new LibvirtRemoteError(error);
  return new VirtError(ErrorCodeOf[error.code] ?? 'OPERATION_FAILED', `libvirt ${procedure}: ${cause.message}`, { cause });
}

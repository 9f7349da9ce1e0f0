import { VirtError } from '@virtbus/api-contract';
import { isLoopbackHost } from './loopback.js';

export interface ListenPolicyOptions {
  tls: boolean;
  allowInsecure?: boolean;
}

/** The gateway refuses to serve plaintext HTTP beyond loopback unless the operator forces it. */
export function assertSecureListen(host: string, options: ListenPolicyOptions): void {
  if (options.tls || options.allowInsecure || isLoopbackHost(host)) return;
  throw new VirtError(
    'OPERATION_INVALID',
    `refusing to listen on ${host} without TLS: configure a certificate and key, listen on loopback, or force it with the allow-insecure option`,
  );
}

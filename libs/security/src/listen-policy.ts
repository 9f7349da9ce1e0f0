import { VirtError } from '@virtbus/api-contract';
import { isLoopbackHost } from './loopback.js';

export interface ListenPolicyOptions {
  tls: boolean;
  allowInsecure?: boolean;
  /** What listens, as in "refusing to <action> <host> without TLS" (default `listen on`). */
  action?: string;
  /** How to fix it, for the message (default: the gateway's certificate, loopback or the allow-insecure option). */
  remedy?: string;
}

/** Daemons refuse to serve plaintext beyond loopback unless the operator forces it. */
export function assertSecureListen(host: string, options: ListenPolicyOptions): void {
  if (options.tls || options.allowInsecure || isLoopbackHost(host)) return;
  const remedy = options.remedy ?? 'configure a certificate and key, listen on loopback, or force it with the allow-insecure option';
  throw new VirtError('OPERATION_INVALID', `refusing to ${options.action ?? 'listen on'} ${host} without TLS: ${remedy}`);
}

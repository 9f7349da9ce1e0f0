import { VirtError } from '@virtbus/api-contract';
import { isLoopbackHost } from '@virtbus/security';

/** Whether a live migration's stream is encrypted: as asked, else whenever it can leave loopback (this node's migration address is not loopback). */
export function wantsTls(requested: boolean | undefined, listenHost: string): boolean {
  return requested ?? !isLoopbackHost(listenHost);
}

export interface MigrationTlsCheck {
  node: string;
  tls: boolean;
  listenHost: string;
  tlsDir?: string;
  /** The request's own `tls`, to say why TLS was chosen. */
  requested?: boolean;
  /** The other side's reason, when it chose TLS. */
  because?: string;
}

/** A TLS migration without this node's certificates is refused, never silently sent in plaintext. */
export function assertMigrationTls(check: MigrationTlsCheck): void {
  if (!check.tls || check.tlsDir !== undefined) return;
  const why =
    check.because ??
    (check.requested === true
      ? 'the request asks for tls'
      : `its migration address ${check.listenHost} is not loopback, so live migrations are encrypted by default (tls: false in the request forces plaintext)`);
  throw new VirtError('MIGRATION_INCOMPATIBLE', `node ${check.node} has no migration TLS certificates (--migration-tls-dir): ${why}`);
}

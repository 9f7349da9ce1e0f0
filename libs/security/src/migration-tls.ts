import { copyFile, chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureCertificateAuthority, issueCertificate, type CertificateFiles } from './pki.js';

/** The file names QEMU's tls-creds-x509 object reads from its directory. */
export const QEMU_TLS_FILES = {
  ca: 'ca-cert.pem',
  serverCert: 'server-cert.pem',
  serverKey: 'server-key.pem',
  clientCert: 'client-cert.pem',
  clientKey: 'client-key.pem',
} as const;

export interface MigrationTlsOptions {
  /** The CA to sign with (the deployment's); a new one under `dir/ca` when absent. */
  ca?: CertificateFiles;
  /** Addresses incoming migrations listen on (server certificate SANs). */
  hosts: readonly string[];
  node: string;
}

/**
 * Lays out a node's migration certificates under QEMU's names (for `--migration-tls-dir`): the node is the server of
 * incoming migrations and the client of outgoing ones, both signed by the CA every node trusts.
 */
export async function ensureMigrationTlsDir(dir: string, options: MigrationTlsOptions): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = options.ca ?? (await ensureCertificateAuthority(join(dir, 'ca')));
  const issued = join(dir, 'issued');
  const subject = { O: 'virtbus', OU: 'migration', CN: options.node };
  const server = await issueCertificate(ca, issued, `${options.node}-server`, { subject, serverHosts: options.hosts });
  const client = await issueCertificate(ca, issued, `${options.node}-client`, { subject, client: true });
  await copyFile(ca.cert, join(dir, QEMU_TLS_FILES.ca));
  await copyFile(server.cert, join(dir, QEMU_TLS_FILES.serverCert));
  await copyFile(server.key, join(dir, QEMU_TLS_FILES.serverKey));
  await copyFile(client.cert, join(dir, QEMU_TLS_FILES.clientCert));
  await copyFile(client.key, join(dir, QEMU_TLS_FILES.clientKey));
  await chmod(join(dir, QEMU_TLS_FILES.serverKey), 0o600);
  await chmod(join(dir, QEMU_TLS_FILES.clientKey), 0o600);
  return dir;
}

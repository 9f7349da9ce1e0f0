import { execFile } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { access, chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { VirtError } from '@virtbus/api-contract';

const run = promisify(execFile);

export interface CertificateFiles {
  cert: string;
  key: string;
}

/** Subject attributes, most general first as openssl's `-subj` wants them. */
export interface DistinguishedName {
  O: string;
  OU?: string;
  /** The identity's node scope, carried in the certificate as a second OU `nodes <n1> <n2>…` so every verifier sees it. */
  nodes?: readonly string[];
  CN: string;
}

const DN_VALUE = /^[A-Za-z0-9 _.-]+$/;
/** The OU value prefix that carries a node scope. */
export const NODES_OU_PREFIX = 'nodes ';

/** The organisational units in certificate order: the kind, then the node scope when limited. */
function unitsOf(dn: DistinguishedName): string[] {
  return [...(dn.OU ? [dn.OU] : []), ...(dn.nodes?.length ? [`${NODES_OU_PREFIX}${dn.nodes.join(' ')}`] : [])];
}

function checkDn(dn: DistinguishedName): void {
  for (const value of [dn.O, ...unitsOf(dn), dn.CN]) {
    if (!DN_VALUE.test(value)) {
      throw new VirtError('INVALID_ARG', `certificate subject values allow letters, digits, space, _ . - only: ${JSON.stringify(value)}`);
    }
  }
}

/** The node scope an OU value carries (`nodes a b` → [a, b]); undefined when it is no scope. */
export function nodesFromUnit(unit: string): string[] | undefined {
  if (!unit.startsWith(NODES_OU_PREFIX)) return undefined;
  return unit.slice(NODES_OU_PREFIX.length).split(' ').filter(Boolean);
}

export function opensslSubject(dn: DistinguishedName): string {
  checkDn(dn);
  return `/O=${dn.O}${unitsOf(dn).map((unit) => `/OU=${unit}`).join('')}/CN=${dn.CN}`;
}

/** The subject as node's X509Certificate prints it (certificate order, one attribute a line). */
function x509Subject(dn: DistinguishedName): string {
  return [`O=${dn.O}`, ...unitsOf(dn).map((unit) => `OU=${unit}`), `CN=${dn.CN}`].join('\n');
}

/** The user name nats-server's `verify_and_map` derives from a certificate without SANs: RFC 2253, most specific first. */
export function natsUserForDn(dn: DistinguishedName): string {
  checkDn(dn);
  return [`CN=${dn.CN}`, ...unitsOf(dn).reverse().map((unit) => `OU=${unit}`), `O=${dn.O}`].join(',');
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args, { timeout: 30_000 });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new VirtError('OPERATION_FAILED', `openssl ${args[0]} failed: ${stderr.trim() || (error as Error).message}`, { cause: error });
  }
}

export async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

const newKeyArgs = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** Creates a CA in `dir` (ca.crt, ca.key), or reuses the one already there so existing certificates stay valid. */
export async function ensureCertificateAuthority(dir: string, options: { organization?: string; days?: number } = {}): Promise<CertificateFiles> {
  await mkdir(dir, { recursive: true });
  const files = { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  if ((await fileExists(files.cert)) && (await fileExists(files.key))) return files;
  const organization = options.organization ?? 'virtbus';
  await openssl([
    'req', '-x509', ...newKeyArgs,
    '-keyout', files.key, '-out', files.cert,
    '-subj', opensslSubject({ O: organization, CN: `${organization} CA` }),
    '-days', String(options.days ?? 3650),
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]); // prettier-ignore
  await chmod(files.key, 0o600);
  return files;
}

export interface IssueOptions {
  subject: DistinguishedName;
  /** serverAuth with these SANs (IPs or DNS names). */
  serverHosts?: readonly string[];
  /** clientAuth; a client certificate carries no SANs so `verify_and_map` maps its subject DN. */
  client?: boolean;
  days?: number;
  /** Replace an existing certificate instead of keeping it. */
  force?: boolean;
}

async function subjectIs(certFile: string, dn: DistinguishedName): Promise<boolean> {
  try {
    return new X509Certificate(await readFile(certFile)).subject === x509Subject(dn);
  } catch {
    return false;
  }
}

/** Issues `<dir>/<name>.crt` and `.key` signed by the CA; keeps an existing pair with the same subject unless `force`. */
export async function issueCertificate(ca: CertificateFiles, dir: string, name: string, options: IssueOptions): Promise<CertificateFiles> {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) throw new VirtError('INVALID_ARG', `invalid certificate file name: ${JSON.stringify(name)}`);
  await mkdir(dir, { recursive: true });
  const files = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  // a certificate whose subject no longer says what the identity is (role, node scope) is reissued
  if (!options.force && (await fileExists(files.cert)) && (await fileExists(files.key)) && (await subjectIs(files.cert, options.subject))) return files;
  const usages = [...(options.serverHosts ? ['serverAuth'] : []), ...(options.client ? ['clientAuth'] : [])];
  if (usages.length === 0) throw new VirtError('INVALID_ARG', `certificate ${name} needs a server or client usage`);
  const extensions = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${usages.join(',')}`,
    ...(options.serverHosts?.length ? [`subjectAltName=${options.serverHosts.map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',')}`] : []),
  ];
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  try {
    await openssl(['req', '-new', ...newKeyArgs, '-keyout', files.key, '-out', csr, '-subj', opensslSubject(options.subject)]);
    await chmod(files.key, 0o600);
    await writeFile(ext, `${extensions.join('\n')}\n`);
    await openssl([
      'x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key,
      '-set_serial', `0x${randomBytes(16).toString('hex')}`,
      '-days', String(options.days ?? 825), '-sha256', '-extfile', ext, '-out', files.cert,
    ]); // prettier-ignore
  } finally {
    await rm(csr, { force: true });
    await rm(ext, { force: true });
  }
  return files;
}

import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { VirtError, isNodeName } from '@virtbus/api-contract';
import { renderNatsServerConfig, type NatsTlsFiles, type NatsUser } from './nats-config.js';
import { BusIdentityKind, inboxPrefix, permissionsFor, type BusIdentity, type NatsPermissions } from './nats-permissions.js';
import { ensureCertificateAuthority, issueCertificate, natsUserForDn, type CertificateFiles, type DistinguishedName } from './pki.js';

export const ORGANIZATION = 'virtbus';
export const NATS_PORT = 4222;
export const ROUTE_PORT = 6222;

export interface ClientIdentitySpec {
  name: string;
  kind: typeof BusIdentityKind.ReadOnly | typeof BusIdentityKind.Operator | typeof BusIdentityKind.Admin;
  nodes?: string[];
}

export const DEFAULT_CLIENTS: readonly ClientIdentitySpec[] = [
  { name: 'readonly', kind: BusIdentityKind.ReadOnly },
  { name: 'operator', kind: BusIdentityKind.Operator },
  { name: 'admin', kind: BusIdentityKind.Admin },
];

export interface BundleOptions {
  outDir: string;
  nodes: readonly string[];
  /** Hosts (names or IPs) nats-server runs on: SANs of its certificate; more than one writes a clustered config per host. */
  natsHosts?: readonly string[];
  /** Hosts the gateway serves HTTPS on: SANs of its HTTPS certificate. */
  gatewayHosts?: readonly string[];
  natsUrl?: string;
  clients?: readonly ClientIdentitySpec[];
  agentCreateStreams?: boolean;
  /** Where the bundle will live on the hosts; paths inside configs and env files point there. Defaults to outDir. */
  installDir?: string;
  jetstreamStoreDir?: string;
  days?: number;
  /** Reissue certificates that already exist (the CA is always kept). */
  force?: boolean;
}

export interface BundleIdentity {
  name: string;
  kind: BusIdentityKind;
  node?: string;
  dn: DistinguishedName;
  /** The user name nats-server maps this certificate to. */
  natsUser: string;
  permissions: NatsPermissions;
  files: CertificateFiles;
  envFile: string;
}

export interface SecurityBundle {
  dir: string;
  ca: CertificateFiles;
  natsServer: CertificateFiles;
  gatewayHttps: CertificateFiles;
  identities: BundleIdentity[];
  /** TLS files and users as nats-server must see them (install paths). */
  tls: NatsTlsFiles;
  users: NatsUser[];
  configFile: string;
  clusterConfigFiles: string[];
  /** tls + authorization only, for a harness that writes `listen` and `jetstream` itself. */
  configFragment: string;
}

function envText(values: Record<string, string>): string {
  return `${Object.entries(values)
    .map(([key, val]) => `${key}=${val}`)
    .join('\n')}\n`;
}

/** Creates (or completes) a CA, certificates, nats-server configs and one env file per identity. */
export async function generateSecurityBundle(options: BundleOptions): Promise<SecurityBundle> {
  if (options.nodes.length === 0) throw new VirtError('INVALID_ARG', 'at least one node is needed');
  for (const node of options.nodes) if (!isNodeName(node)) throw new VirtError('INVALID_ARG', `invalid node name: ${JSON.stringify(node)}`);
  const dir = resolve(options.outDir);
  const installDir = options.installDir ?? dir;
  const installed = (path: string) => join(installDir, path.slice(dir.length + 1));
  const natsHosts = [...(options.natsHosts ?? [])];
  const certsDir = join(dir, 'certs');
  const envDir = join(dir, 'env');
  await mkdir(envDir, { recursive: true });

  const ca = await ensureCertificateAuthority(join(dir, 'ca'), { organization: ORGANIZATION });
  const issue = (name: string, extra: { subject: DistinguishedName; serverHosts?: readonly string[]; client?: boolean }) =>
    issueCertificate(ca, certsDir, name, { ...extra, days: options.days, force: options.force });
  // routes between servers authenticate with the same certificate, so it carries client usage too
  const natsServer = await issue('nats-server', {
    subject: { O: ORGANIZATION, OU: 'nats', CN: 'nats-server' },
    serverHosts: ['127.0.0.1', 'localhost', ...natsHosts],
    client: true,
  });
  const gatewayHttps = await issue('gateway-https', {
    subject: { O: ORGANIZATION, OU: 'gateway', CN: 'gateway-https' },
    serverHosts: ['127.0.0.1', 'localhost', ...(options.gatewayHosts ?? [])],
  });

  const specs: BusIdentity[] = [
    ...options.nodes.map((node): BusIdentity => ({ kind: BusIdentityKind.Agent, name: `agent-${node}`, node, createStreams: options.agentCreateStreams })),
    { kind: BusIdentityKind.Gateway, name: 'gateway' },
    ...(options.clients ?? DEFAULT_CLIENTS).map((c): BusIdentity =>
      c.kind === BusIdentityKind.Admin ? { kind: c.kind, name: c.name } : { kind: c.kind, name: c.name, nodes: c.nodes },
    ),
  ];
  const names = new Set<string>();
  const natsUrl = options.natsUrl ?? (natsHosts.length ? natsHosts.map((h) => `tls://${h}:${NATS_PORT}`).join(',') : `tls://127.0.0.1:${NATS_PORT}`);
  const tls: NatsTlsFiles = { cert: installed(natsServer.cert), key: installed(natsServer.key), ca: installed(ca.cert) };
  const identities: BundleIdentity[] = [];
  for (const spec of specs) {
    if (names.has(spec.name)) throw new VirtError('INVALID_ARG', `duplicate identity name: ${spec.name}`);
    names.add(spec.name);
    const nodes = 'nodes' in spec && spec.nodes?.length ? spec.nodes : undefined;
    const dn: DistinguishedName = { O: ORGANIZATION, OU: spec.kind, ...(nodes ? { nodes } : {}), CN: spec.name };
    const files = await issue(spec.name, { subject: dn, client: true });
    const envFile = join(envDir, `${spec.name}.env`);
    const env: Record<string, string> = {
      NATS_URL: natsUrl,
      NATS_CA: tls.ca,
      NATS_CERT: installed(files.cert),
      NATS_KEY: installed(files.key),
      NATS_INBOX_PREFIX: inboxPrefix(spec.name),
    };
    if (spec.kind === BusIdentityKind.Agent) env.VIRTBUS_NODE = spec.node;
    if (spec.kind === BusIdentityKind.Gateway) {
      env.VIRTBUS_HTTPS_CERT = installed(gatewayHttps.cert);
      env.VIRTBUS_HTTPS_KEY = installed(gatewayHttps.key);
      env.VIRTBUS_HTTPS_CA = tls.ca;
    }
    await writeFile(envFile, envText(env), { mode: 0o600 });
    identities.push({
      name: spec.name,
      kind: spec.kind,
      ...(spec.kind === BusIdentityKind.Agent ? { node: spec.node } : {}),
      dn,
      natsUser: natsUserForDn(dn),
      permissions: permissionsFor(spec),
      files,
      envFile,
    });
  }

  const users: NatsUser[] = identities.map((identity) => ({ user: identity.natsUser, permissions: identity.permissions }));
  const storeDir = options.jetstreamStoreDir ?? '/var/lib/virtbus/nats';
  const configFile = join(dir, 'nats-server.conf');
  await writeFile(
    configFile,
    renderNatsServerConfig({
      tls,
      users,
      listen: natsHosts.length ? `0.0.0.0:${NATS_PORT}` : `127.0.0.1:${NATS_PORT}`,
      jetstreamStoreDir: storeDir,
    }),
  );
  const clusterConfigFiles: string[] = [];
  if (natsHosts.length > 1) {
    for (const host of natsHosts) {
      const file = join(dir, `nats-server-${host}.conf`);
      const routes = natsHosts.filter((other) => other !== host).map((other) => `nats-route://${other}:${ROUTE_PORT}`);
      await writeFile(
        file,
        renderNatsServerConfig({
          tls,
          users,
          serverName: `nats-${host}`,
          listen: `0.0.0.0:${NATS_PORT}`,
          jetstreamStoreDir: storeDir,
          cluster: { name: ORGANIZATION, listen: `0.0.0.0:${ROUTE_PORT}`, routes },
        }),
      );
      clusterConfigFiles.push(file);
    }
  }
  return {
    dir,
    ca,
    natsServer,
    gatewayHttps,
    identities,
    tls,
    users,
    configFile,
    clusterConfigFiles,
    configFragment: renderNatsServerConfig({ tls, users }),
  };
}

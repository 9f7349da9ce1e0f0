// Generates the CA, certificates, nats-server config and per-identity env files for a list of nodes.
import { parseArgs } from 'node:util';
import { relative } from 'node:path';
import { VirtError } from '@virtbus/api-contract';
import { BusIdentityKind, DEFAULT_CLIENTS, generateSecurityBundle, type ClientIdentitySpec } from '@virtbus/security';

const usage = `usage: npx tsx tools/security/generate.ts --out <dir> --nodes a,b [options]
  --gateway-hosts h1,h2     extra SANs for the gateway's HTTPS certificate (127.0.0.1 and localhost are always in)
  --nats-hosts n1,n2,n3     hosts running nats-server: SANs of its certificate; more than one writes a clustered config per host
  --nats-url URL            NATS_URL written to the env files (default tls://<nats hosts>:4222 or tls://127.0.0.1:4222)
  --install-dir DIR         where the bundle will live on the hosts (paths in configs and env files); default --out
  --jetstream-dir DIR       JetStream store directory in the configs (default /var/lib/virtbus/nats)
  --client name:role[:n1+n2] a client identity (role read-only, operator or admin, optionally limited to nodes);
                            repeatable; replaces the default readonly, operator and admin identities
  --no-agent-create-streams agents may not create VIRT_EVENTS / virt_nodes (an admin creates them first)
  --days N                  certificate lifetime (default 825)
  --force                   reissue existing certificates (the CA is always kept)`;

const list = (value: string | undefined) => (value ? value.split(',').map((s) => s.trim()).filter(Boolean) : []);

function parseClient(spec: string): ClientIdentitySpec {
  const [name, kind, nodes] = spec.split(':');
  const kinds = [BusIdentityKind.ReadOnly, BusIdentityKind.Operator, BusIdentityKind.Admin] as string[];
  if (!name || !kind || !kinds.includes(kind)) throw new VirtError('INVALID_ARG', `--client wants name:role[:node1+node2] with role ${kinds.join('|')}: ${spec}`);
  return { name, kind: kind as ClientIdentitySpec['kind'], ...(nodes ? { nodes: nodes.split('+') } : {}) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      nodes: { type: 'string' },
      'gateway-hosts': { type: 'string' },
      'nats-hosts': { type: 'string' },
      'nats-url': { type: 'string' },
      'install-dir': { type: 'string' },
      'jetstream-dir': { type: 'string' },
      client: { type: 'string', multiple: true },
      'no-agent-create-streams': { type: 'boolean' },
      days: { type: 'string' },
      force: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || !values.out || !values.nodes) {
    console.log(usage);
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const bundle = await generateSecurityBundle({
    outDir: values.out,
    nodes: list(values.nodes),
    gatewayHosts: list(values['gateway-hosts']),
    natsHosts: list(values['nats-hosts']),
    ...(values['nats-url'] ? { natsUrl: values['nats-url'] } : {}),
    ...(values['install-dir'] ? { installDir: values['install-dir'] } : {}),
    ...(values['jetstream-dir'] ? { jetstreamStoreDir: values['jetstream-dir'] } : {}),
    clients: values.client?.length ? values.client.map(parseClient) : DEFAULT_CLIENTS,
    agentCreateStreams: !values['no-agent-create-streams'],
    ...(values.days ? { days: Number(values.days) } : {}),
    force: values.force ?? false,
  });
  const rel = (path: string) => (relative(process.cwd(), path).startsWith('..') ? path : relative(process.cwd(), path) || '.');
  console.log(`CA:                 ${rel(bundle.ca.cert)} (keep ${rel(bundle.ca.key)} offline)`);
  console.log(`nats-server:        ${rel(bundle.configFile)}${bundle.clusterConfigFiles.map((f) => `\n                    ${rel(f)}`).join('')}`);
  console.log(`gateway HTTPS cert: ${rel(bundle.gatewayHttps.cert)}`);
  console.log('identities:');
  for (const identity of bundle.identities) console.log(`  ${identity.name.padEnd(16)} ${identity.kind.padEnd(10)} ${rel(identity.envFile)}  (nats user "${identity.natsUser}")`);
}

main().catch((error: unknown) => {
  console.error(VirtError.is(error) ? `${error.code}: ${error.message}` : error);
  process.exitCode = 1;
});

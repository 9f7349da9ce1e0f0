import { execFileSync } from 'node:child_process';
import { chmod, copyFile, cp, mkdir, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { TRACING_BUNDLE } from '../build/bundle-names.js';

/** `node dist/install.mjs`: installs the built bundles on a host (see docs/INSTALL.md). */
const USAGE = `usage: node dist/install.mjs [--role agent,gateway] [--prefix /usr/local] [--destdir DIR] [--node PATH] [--enable] [--uninstall]

  --role LIST     daemons to install: agent, gateway or both (default: agent,gateway); the virtbus CLI always
  --prefix DIR    bin/, lib/virtbus/, share/ go here (default: /usr/local)
  --destdir DIR   stage everything under DIR (packaging, tests): nothing is started or reloaded
  --node PATH     the node (>= 20) the commands and units run (default: the node running this installer)
  --enable        systemctl enable --now the installed units (not with --destdir)
  --uninstall     remove what an install put there; keeps /etc/virtbus and /var/lib/virtbus
`;

const HERE = dirname(fileURLToPath(import.meta.url));
const Roles = ['agent', 'gateway'] as const;
type Role = (typeof Roles)[number];
const MANIFEST = 'installed.json';

interface Layout {
  destdir: string;
  prefix: string;
  node: string;
}

interface Manifest {
  version: 1;
  roles: Role[];
  /** Absolute paths as seen on the host (without destdir). */
  files: string[];
  units: string[];
}

const path = (layout: Layout, absolute: string) => join(layout.destdir || '/', absolute);
// the CLI bundle is CommonJS (it starts faster), the daemons' are ES modules
const bundleFile = (bundle: string) => (bundle === 'virtbus' ? 'virtbus.cjs' : `${bundle}.mjs`);
const libDir = (layout: Layout) => join(layout.prefix, 'lib/virtbus');

const AGENT_ENV = `# virtbus agent settings: KEY=VALUE lines of the agent's environment variables (virtbus-agent --help).
# The process environment and command-line flags override these. Changes apply at: systemctl restart virtbus-agent
# (running domains keep running).

# Node name (default: the host name)
#VIRTBUS_NODE=
# NATS server(s), comma separated
#NATS_URL=nats://127.0.0.1:4222
# TLS to NATS and this agent's identity (see docs/SECURITY.md)
#NATS_CA=/etc/virtbus/pki/ca.pem
#NATS_CERT=/etc/virtbus/pki/agent-cert.pem
#NATS_KEY=/etc/virtbus/pki/agent-key.pem
# Durable state (default: /var/lib/virtbus/<node>)
#VIRTBUS_STATE_DIR=
# Drivers to load (default: all)
#VIRTBUS_DRIVERS=qemu,kvm,lxc
#VIRTBUS_METRICS_ADDRESS=127.0.0.1:9177
#VIRTBUS_MIGRATION_ADDRESS=127.0.0.1
#VIRTBUS_LOG_LEVEL=info
`;

const GATEWAY_ENV = `# virtbus gateway settings: KEY=VALUE lines of the gateway's environment variables (virtbus-gateway --help).
# The process environment and command-line flags override these. Changes apply at: systemctl restart virtbus-gateway

#NATS_URL=nats://127.0.0.1:4222
#GATEWAY_HOST=127.0.0.1
#GATEWAY_PORT=8080
# HTTPS; a non-loopback address needs it (see docs/SECURITY.md)
#VIRTBUS_HTTPS_CERT=/etc/virtbus/pki/gateway-cert.pem
#VIRTBUS_HTTPS_KEY=/etc/virtbus/pki/gateway-key.pem
# Bearer tokens (reloaded by systemctl reload virtbus-gateway)
#VIRTBUS_TOKENS=/etc/virtbus/tokens.json
# Audit log: the unit may only write under /var/log/virtbus
#VIRTBUS_AUDIT_LOG=/var/log/virtbus/audit.log
#LOG_LEVEL=info
`;

/** A daemon's systemd unit: what both daemons share around their own [Service] settings. */
function unit(layout: Layout, daemon: 'agent' | 'gateway', description: string, service: string): string {
  return `[Unit]
Description=${description}
Documentation=file://${join(layout.prefix, 'share/doc/virtbus/INSTALL.md')}
Wants=network-online.target
After=network-online.target nats-server.service
StartLimitIntervalSec=0

[Service]
Type=exec
# settings: /etc/virtbus/${daemon}.env
ExecStart=${join(layout.prefix, `bin/virtbus-${daemon}`)}
${service}
[Install]
WantedBy=multi-user.target
`;
}

function agentUnit(layout: Layout): string {
  return unit(
    layout,
    'agent',
    "virtbus agent: this host's hypervisors on NATS",
    `# Only the agent stops: QEMU and LXC domains keep running through a restart or an upgrade (like libvirtd), and the
# new agent adopts them.
KillMode=process
# a bus that is not up yet ends the daemon: retry every 5 s for good; exit 2 (bad settings) stays down
Restart=on-failure
RestartSec=5s
RestartPreventExitStatus=2
TimeoutStopSec=30s
StateDirectory=virtbus
StateDirectoryMode=0700
LimitNOFILE=1048576
TasksMax=infinity
`,
  );
}

function gatewayUnit(layout: Layout): string {
  return unit(
    layout,
    'gateway',
    'virtbus gateway: the HTTP API in front of the agents',
    `# re-reads the token file
ExecReload=/bin/kill -HUP $MAINPID
# a bus that is not up yet ends the gateway: retry every 5 s for good
Restart=on-failure
RestartSec=5s
TimeoutStopSec=30s
LogsDirectory=virtbus
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
`,
  );
}

// no node flags, as tests and bench run them: --enable-source-maps cost ~9 MiB idle and ~60 MiB from the first stack
function wrapper(layout: Layout, bundle: string): string {
  // next to the wrapper (a --destdir tree runs where it is staged), else the installed path (a symlinked wrapper); no fork
  return [
    '#!/bin/sh',
    '# installed by virtbus install.mjs: runs the bundle with the system node',
    'lib="${0%/*}/../lib/virtbus"',
    `[ -e "$lib/${bundle}" ] || lib=${libDir(layout)}`,
    `exec ${layout.node} "$lib/${bundle}" "$@"`,
    '',
  ].join('\n');
}

function systemdRunning(layout: Layout): boolean {
  return !layout.destdir && existsSync('/run/systemd/system');
}

function systemctl(...args: string[]): void {
  execFileSync('systemctl', args, { stdio: 'inherit' });
}

async function install(layout: Layout, roles: Role[], enable: boolean): Promise<void> {
  for (const file of [...['virtbus', ...roles.map((role) => `virtbus-${role}`)].map(bundleFile), ...(roles.length > 0 ? [TRACING_BUNDLE] : [])]) {
    if (!existsSync(join(HERE, file))) throw new Error(`${join(HERE, file)} is missing: run npm run build first`);
  }
  const manifestPath = path(layout, join(libDir(layout), MANIFEST));
  const previous = existsSync(manifestPath) ? (JSON.parse(await readFile(manifestPath, 'utf8')) as Manifest) : undefined;
  const files: string[] = [];
  const put = async (target: string, content: string | { copy: string }, mode: number) => {
    const real = path(layout, target);
    await mkdir(dirname(real), { recursive: true, mode: 0o755 });
    // a new file next to the old one, renamed over it: a running daemon keeps its old bundle until it restarts
    const temp = `${real}.new`;
    if (typeof content === 'string') await writeFile(temp, content, { mode });
    else await copyFile(content.copy, temp);
    await chmod(temp, mode);
    await rename(temp, real);
    files.push(target);
  };

  const lib = libDir(layout);
  const putBundle = async (file: string) => {
    for (const suffix of ['', '.map', '.LEGAL.txt']) {
      if (existsSync(join(HERE, file + suffix))) await put(join(lib, file + suffix), { copy: join(HERE, file + suffix) }, 0o644);
    }
  };
  const bundles = ['virtbus', ...roles.map((role) => `virtbus-${role}`)];
  for (const bundle of bundles) {
    await putBundle(bundleFile(bundle));
    await put(join(layout.prefix, 'bin', bundle), wrapper(layout, bundleFile(bundle)), 0o755);
  }
  // the daemons load it beside them when OTEL_* turns tracing on
  if (roles.length > 0) await putBundle(TRACING_BUNDLE);
  if (roles.includes('gateway')) {
    // /docs and the web UI at /ui, beside the gateway bundle that serves them
    for (const dir of ['swagger-ui', 'web']) {
      await rm(path(layout, join(lib, dir)), { recursive: true, force: true });
      await cp(join(HERE, dir), path(layout, join(lib, dir)), { recursive: true });
      files.push(join(lib, dir));
    }
  }
  for (const doc of ['INSTALL.md', 'CLI.md']) {
    if (existsSync(join(HERE, 'doc', doc))) await put(join(layout.prefix, 'share/doc/virtbus', doc), { copy: join(HERE, 'doc', doc) }, 0o644);
  }
  const completion = execFileSync(process.execPath, [join(HERE, bundleFile('virtbus')), 'completion', 'bash'], { encoding: 'utf8' });
  await put(join(layout.prefix, 'share/bash-completion/completions/virtbus'), completion, 0o644);

  // configuration is the admin's: written once, never overwritten
  await mkdir(path(layout, '/etc/virtbus'), { recursive: true, mode: 0o755 });
  for (const role of roles) {
    const config = path(layout, `/etc/virtbus/${role}.env`);
    if (!existsSync(config)) await writeFile(config, role === 'agent' ? AGENT_ENV : GATEWAY_ENV, { mode: 0o600 });
  }
  await mkdir(path(layout, '/var/lib/virtbus'), { recursive: true, mode: 0o700 });

  const units: string[] = [];
  for (const role of roles) {
    const unit = `/etc/systemd/system/virtbus-${role}.service`;
    await put(unit, role === 'agent' ? agentUnit(layout) : gatewayUnit(layout), 0o644);
    units.push(`virtbus-${role}.service`);
  }
  // roles dropped since the last install go away
  for (const stale of previous?.files.filter((file) => !files.includes(file)) ?? []) await rm(path(layout, stale), { recursive: true, force: true });
  const manifest: Manifest = { version: 1, roles, files, units };
  await writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);

  const bin = join(layout.prefix, 'bin');
  console.log(`installed virtbus (${roles.join(', ')}) under ${layout.destdir || '/'}: ${bin}/virtbus${roles.map((role) => `, ${bin}/virtbus-${role}`).join('')}`);
  if (systemdRunning(layout)) {
    systemctl('daemon-reload');
    if (enable) systemctl('enable', '--now', ...units);
    else {
      // a running daemon picks up the new bundle; domains survive the agent's restart (KillMode=process)
      for (const unit of units) execFileSync('systemctl', ['try-restart', unit], { stdio: 'inherit' });
      console.log(`start with: systemctl enable --now ${units.join(' ')}`);
    }
  } else if (enable) throw new Error('--enable needs a running systemd and no --destdir');
  console.log(`settings: ${roles.map((role) => `/etc/virtbus/${role}.env`).join(', ')}; state: /var/lib/virtbus`);
}

/** Only virtbus's own directories go, and only when empty. */
async function removeOwnDirs(layout: Layout): Promise<void> {
  for (const dir of [libDir(layout), join(layout.prefix, 'share/doc/virtbus')]) {
    const real = path(layout, dir);
    if (existsSync(real) && (await readdir(real)).length === 0) await rmdir(real);
  }
}

async function uninstall(layout: Layout): Promise<void> {
  const manifestPath = path(layout, join(libDir(layout), MANIFEST));
  if (!existsSync(manifestPath)) throw new Error(`nothing to uninstall: no ${manifestPath}`);
  const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as Manifest;
  if (systemdRunning(layout) && manifest.units.length > 0) systemctl('disable', '--now', ...manifest.units);
  for (const file of manifest.files) await rm(path(layout, file), { recursive: true, force: true });
  await rm(manifestPath, { force: true });
  await removeOwnDirs(layout);
  if (systemdRunning(layout)) systemctl('daemon-reload');
  console.log(`uninstalled virtbus from ${layout.destdir || '/'}; kept /etc/virtbus and /var/lib/virtbus`);
}

async function checkNode(node: string): Promise<void> {
  const info = await stat(node).catch(() => undefined);
  if (!info?.isFile()) throw new Error(`--node ${node} is not a file`);
  const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
  if (Number(/^v(\d+)/.exec(version)?.[1] ?? 0) < 20) throw new Error(`${node} is ${version}; virtbus needs Node 20 or later`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      role: { type: 'string', default: Roles.join(',') },
      prefix: { type: 'string', default: '/usr/local' },
      destdir: { type: 'string', default: '' },
      node: { type: 'string', default: process.execPath },
      enable: { type: 'boolean', default: false },
      uninstall: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (!values.prefix.startsWith('/')) throw new Error('--prefix must be an absolute path');
  const layout: Layout = { destdir: values.destdir, prefix: values.prefix, node: values.node };
  if (values.uninstall) return uninstall(layout);
  const roles = values.role.split(',').map((role) => role.trim()).filter(Boolean);
  for (const role of roles) if (!(Roles as readonly string[]).includes(role)) throw new Error(`unknown role ${role}; roles: ${Roles.join(', ')}`);
  await checkNode(layout.node);
  await install(layout, roles as Role[], values.enable);
}

main().catch((error: unknown) => {
  process.stderr.write(`install.mjs: ${(error as Error).message}\n`);
  process.exit(1);
});

import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NodeList } from '@virtbus/api-contract';
import { ensureMigrationTlsDir, generateSecurityBundle, renderNatsServerConfig, type NatsClientConfig } from '@virtbus/security';
import { addTestNetns, agentArgs, builtBundle, processRunning, removeTestNetns, requireBinary } from '@virtbus/testing';

/** Ports every namespace uses on its own address (namespaces do not share ports, so the standard ones). */
export const FLEET_PORTS = { client: 4222, route: 6222, monitor: 8222, gateway: 8080 } as const;
/** The namespaces' subnet: it exists only on the fleet's bridge, never on the host. */
const SUBNET = '10.213.0';

export interface FleetHost {
  readonly node: string;
  readonly netns: string;
  readonly ip: string;
  /** Unix sockets (file system, so reachable from the host namespace) that the namespace's relay forwards to its servers. */
  readonly natsSocket: string;
  readonly monitorSocket: string;
}

export interface FleetPlan {
  readonly prefix: string;
  readonly dir: string;
  /** Holds the bridge every other namespace is plugged into by a veth pair. */
  readonly switchNetns: string;
  readonly hosts: readonly FleetHost[];
  readonly gateway: { readonly netns: string; readonly ip: string; readonly httpSocket: string };
  readonly drivers: string;
}

/** PIDs of everything the fleet runs (what `down` ends), kept in <dir>/fleet.json for the CLI. */
export interface FleetState {
  plan: FleetPlan;
  servers: Record<string, number>;
  agents: Record<string, number>;
  relays: Record<string, number>;
  gateway?: number;
  /** Namespaces this fleet created (only these are removed: a name already taken is never someone else's to delete). */
  namespaces: string[];
}

export interface FleetOptions {
  /** Namespace names start with it (`<prefix>-h1`…); a short token, unique per fleet on this machine. */
  prefix: string;
  dir: string;
  /** Node names of the hosts (default h1, h2, h3). */
  nodes?: readonly string[];
  /** Agent drivers (default test,qemu). */
  drivers?: string;
}

export function fleetPlan(options: FleetOptions): FleetPlan {
  if (!/^[a-z][a-z0-9]{0,11}$/.test(options.prefix)) throw new Error(`fleet prefix must be 1-12 lower-case letters or digits, got ${JSON.stringify(options.prefix)}`);
  const socket = (name: string) => join(options.dir, 'sockets', `${name}.sock`);
  const nodes = options.nodes ?? ['h1', 'h2', 'h3'];
  return {
    prefix: options.prefix,
    dir: options.dir,
    switchNetns: `${options.prefix}-sw`,
    hosts: nodes.map((node, index) => ({
      node,
      netns: `${options.prefix}-${node}`,
      ip: `${SUBNET}.${index + 1}`,
      natsSocket: socket(`${node}-nats`),
      monitorSocket: socket(`${node}-monitor`),
    })),
    gateway: { netns: `${options.prefix}-gw`, ip: `${SUBNET}.100`, httpSocket: socket('gateway-http') },
    drivers: options.drivers ?? 'test,qemu',
  };
}

const securityDir = (plan: FleetPlan) => join(plan.dir, 'security');
const logFile = (plan: FleetPlan, name: string) => join(plan.dir, 'logs', `${name}.log`);
const stateFile = (dir: string) => join(dir, 'fleet.json');
export const natsUrlOf = (host: FleetHost) => `tls://${host.ip}:${FLEET_PORTS.client}`;
export const agentStateDir = (plan: FleetPlan, node: string) => join(plan.dir, 'state', node);

/** The bus identity `name` of the fleet's bundle (certificate, key, CA, inbox prefix), for `url`. */
export function fleetIdentity(plan: FleetPlan, name: string, url: string): NatsClientConfig {
  // the file names generateSecurityBundle writes (libs/security pki: ca/ca.crt, certs/<identity>.crt and .key)
  const certs = join(securityDir(plan), 'certs');
  return { url, ca: join(securityDir(plan), 'ca', 'ca.crt'), cert: join(certs, `${name}.crt`), key: join(certs, `${name}.key`), inboxPrefix: `_INBOX.${name}` };
}

function identityEnv(identity: NatsClientConfig): Record<string, string> {
  return { NATS_CA: identity.ca!, NATS_CERT: identity.cert!, NATS_KEY: identity.key!, NATS_INBOX_PREFIX: identity.inboxPrefix! };
}

/** Starts `command` inside `netns` (ip netns exec execs it: the PID is the command's), detached, output appended to a log file. */
function spawnIn(netns: string, command: string, args: readonly string[], log: string, env: Record<string, string> = {}): number {
  const out = openSync(log, 'a');
  try {
    const child = spawn('ip', ['netns', 'exec', netns, command, ...args], { detached: true, stdio: ['ignore', out, out], env: { ...process.env, ...env } });
    child.unref();
    return child.pid!;
  } finally {
    closeSync(out);
  }
}

const logSize = (log: string) => (existsSync(log) ? statSync(log).size : 0);

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, log?: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms${log ? `; ${log}:\n${readFileSync(log, 'utf8').slice(-3000)}` : ''}`);
    await sleep(100);
  }
}

/** The last lines of the gateway's, agents' and servers' logs (what a failed start or test shows). */
export function fleetLogTails(plan: FleetPlan, chars = 2000): string {
  const names = ['gateway', ...plan.hosts.flatMap((host) => [`agent-${host.node}`, `nats-${host.node}`])];
  return names.map((name) => `--- ${name}:\n${existsSync(logFile(plan, name)) ? readFileSync(logFile(plan, name), 'utf8').slice(-chars) : '(no log)'}`).join('\n');
}

/** Whether `pid` still is a process of the fleet in `dir` (every one names the directory in its command line), not a reused PID. */
function fleetProcess(pid: number, dir: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir);
  } catch {
    return false;
  }
}

/** Ends a process of the fleet in `dir` by PID: `signal`, then SIGKILL after `graceMs`; resolves once it is gone. */
export async function endProcess(dir: string, pid: number | undefined, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
  if (pid === undefined || !processRunning(pid) || !fleetProcess(pid, dir)) return;
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (processRunning(pid) && Date.now() < deadline) await sleep(20);
  if (processRunning(pid)) process.kill(pid, 'SIGKILL');
  while (processRunning(pid)) await sleep(20);
}

/** nats-server of one host: client, route and monitoring ports on the host's address, routes to the others over TLS. */
function natsServerConfig(plan: FleetPlan, host: FleetHost, bundle: { tls: Parameters<typeof renderNatsServerConfig>[0]['tls']; users: Parameters<typeof renderNatsServerConfig>[0]['users'] }): string {
  const routes = plan.hosts.filter((other) => other !== host).map((other) => `nats-route://${other.ip}:${FLEET_PORTS.route}`);
  return [
    renderNatsServerConfig({
      ...bundle,
      serverName: `nats-${host.node}`,
      listen: `${host.ip}:${FLEET_PORTS.client}`,
      jetstreamStoreDir: join(plan.dir, 'jetstream', host.node),
      cluster: { name: 'fleet', listen: `${host.ip}:${FLEET_PORTS.route}`, routes },
    }),
    `http: "${host.ip}:${FLEET_PORTS.monitor}"`,
  ].join('\n');
}

/** (Re)starts a host's nats-server with its config and store; resolves with its PID once it listens. */
export async function startFleetServer(plan: FleetPlan, node: string): Promise<number> {
  const host = hostOf(plan, node);
  const log = logFile(plan, `nats-${node}`);
  // a restart appends to the log of the killed run: only what this run wrote counts
  const from = logSize(log);
  const pid = spawnIn(host.netns, requireBinary('nats-server'), ['-c', join(plan.dir, 'nats', `${node}.conf`)], log);
  const written = () => readFileSync(log).subarray(from).toString();
  await waitUntil(`nats-server of ${node} was not ready`, () => {
    if (!processRunning(pid)) throw new Error(`nats-server of ${node} exited:\n${written().slice(-3000)}`);
    return written().includes('Server is ready');
  }, 30_000, log);
  return pid;
}

function hostOf(plan: FleetPlan, node: string): FleetHost {
  const host = plan.hosts.find((candidate) => candidate.node === node);
  if (!host) throw new Error(`no host ${node} in the fleet`);
  return host;
}

/** A relay inside a namespace: each `socket|host|port` argument listens on the Unix socket and forwards to host:port. */
const RELAY = `const net=require('net'),fs=require('fs');
for(const spec of process.argv.slice(1)){const [path,host,port]=spec.split('|');try{fs.unlinkSync(path)}catch{}
net.createServer((c)=>{const u=net.connect(Number(port),host);const end=()=>{c.destroy();u.destroy()};c.on('error',end);u.on('error',end);c.on('close',end);u.on('close',end);c.pipe(u);u.pipe(c)}).listen(path)}`;

async function startRelay(plan: FleetPlan, netns: string, specs: { socket: string; host: string; port: number }[]): Promise<number> {
  const pid = spawnIn(netns, process.execPath, ['-e', RELAY, ...specs.map((spec) => `${spec.socket}|${spec.host}|${spec.port}`)], logFile(plan, `relay-${netns}`));
  await waitUntil(`the relay in ${netns} did not listen`, () => specs.every((spec) => existsSync(spec.socket)), 10_000);
  return pid;
}

/** One HTTP request to the gateway through its Unix socket (what `fleet status` and readiness use). */
export function gatewayRequest(plan: FleetPlan, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request({ socketPath: plan.gateway.httpSocket, method, path, timeout: 10_000, headers: payload ? { 'content-type': 'application/json' } : {} }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text ? (JSON.parse(text) as unknown) : undefined }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** A loopback TCP port in this process that forwards to a fleet Unix socket (for clients that speak only TCP: fetch, nats.js). */
export async function forwardToSocket(socketPath: string): Promise<{ port: number; close(): Promise<void> }> {
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = netConnect(socketPath);
    for (const socket of [client, upstream]) {
      open.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        open.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

async function saveState(state: FleetState): Promise<void> {
  await writeFile(stateFile(state.plan.dir), `${JSON.stringify(state, null, 2)}\n`);
}

export async function loadFleetState(dir: string): Promise<FleetState | undefined> {
  const text = await readFile(stateFile(dir), 'utf8').catch(() => undefined);
  return text === undefined ? undefined : (JSON.parse(text) as FleetState);
}

/** The namespaces and the bridge: every namespace gets eth0 (a veth whose peer is on br0 in the switch namespace). */
function buildNetwork(state: FleetState): void {
  const { plan } = state;
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const addNetns = (name: string) => {
    addTestNetns(name);
    state.namespaces.push(name);
  };
  addNetns(plan.switchNetns);
  ip('-n', plan.switchNetns, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', plan.switchNetns, 'link', 'set', 'br0', 'up');
  const members = [...plan.hosts.map((host) => ({ netns: host.netns, ip: host.ip, port: host.node })), { netns: plan.gateway.netns, ip: plan.gateway.ip, port: 'gw' }];
  for (const member of members) {
    addNetns(member.netns);
    ip('-n', plan.switchNetns, 'link', 'add', member.port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', member.netns);
    ip('-n', plan.switchNetns, 'link', 'set', member.port, 'master', 'br0', 'up');
    ip('-n', member.netns, 'addr', 'add', `${member.ip}/24`, 'dev', 'eth0');
    ip('-n', member.netns, 'link', 'set', 'eth0', 'up');
  }
}

/**
 * Brings the fleet up: network, certificates, a 3-server JetStream cluster (TLS clients and routes), one agent per host
 * (its own host's server; the others learnt from the cluster for failover), a gateway in its own namespace, relays.
 * Resolves once the gateway lists every node online; on any failure everything made so far is removed before it throws.
 */
export async function fleetUp(options: FleetOptions): Promise<FleetState> {
  const plan = fleetPlan(options);
  const state: FleetState = { plan, servers: {}, agents: {}, relays: {}, namespaces: [] };
  try {
    for (const sub of ['logs', 'nats', 'sockets', 'state', 'jetstream']) await mkdir(join(plan.dir, sub), { recursive: true });
    await saveState(state);
    try {
      buildNetwork(state);
    } finally {
      await saveState(state);
    }
    const nodes = plan.hosts.map((host) => host.node);
    const bundle = await generateSecurityBundle({ outDir: securityDir(plan), nodes, natsHosts: plan.hosts.map((host) => host.ip) });
    for (const host of plan.hosts) await writeFile(join(plan.dir, 'nats', `${host.node}.conf`), natsServerConfig(plan, host, bundle));
    for (const host of plan.hosts) {
      state.servers[host.node] = await startFleetServer(plan, host.node);
      await saveState(state);
    }
    for (const host of plan.hosts) {
      const tlsDir = await ensureMigrationTlsDir(join(plan.dir, 'migration-tls', host.node), { node: host.node, hosts: [host.ip], ca: bundle.ca });
      const args = agentArgs({
        node: host.node,
        natsUrl: natsUrlOf(host),
        stateDir: agentStateDir(plan, host.node),
        drivers: plan.drivers,
        extraArgs: ['--heartbeat-interval', '1', '--migration-address', host.ip, '--migration-tls-dir', tlsDir],
      });
      state.agents[host.node] = spawnIn(host.netns, process.execPath, args, logFile(plan, `agent-${host.node}`), identityEnv(fleetIdentity(plan, `agent-${host.node}`, natsUrlOf(host))));
      state.relays[host.netns] = await startRelay(plan, host.netns, [
        { socket: host.natsSocket, host: host.ip, port: FLEET_PORTS.client },
        { socket: host.monitorSocket, host: host.ip, port: FLEET_PORTS.monitor },
      ]);
      await saveState(state);
    }
    // the gateway is on the second host's server (the first host's dies first in the test, the gateway's second)
    const gatewayServer = plan.hosts[1] ?? plan.hosts[0]!;
    const gatewayArgs = [
      ...[builtBundle('virtbus-gateway'), '--config', 'none', '--nats', natsUrlOf(gatewayServer), '--host', '127.0.0.1', '--port', String(FLEET_PORTS.gateway)],
      ...['--audit-log', logFile(plan, 'audit')],
    ];
    state.gateway = spawnIn(plan.gateway.netns, process.execPath, gatewayArgs, logFile(plan, 'gateway'), identityEnv(fleetIdentity(plan, 'gateway', natsUrlOf(gatewayServer))));
    state.relays[plan.gateway.netns] = await startRelay(plan, plan.gateway.netns, [{ socket: plan.gateway.httpSocket, host: '127.0.0.1', port: FLEET_PORTS.gateway }]);
    await saveState(state);
    await waitUntil(
      'the gateway did not list every node online',
      async () => {
        const listed = await gatewayRequest(plan, 'GET', '/v1/nodes').catch(() => undefined);
        const online = listed?.status === 200 ? (listed.body as NodeList).nodes.filter((node) => node.online).map((node) => node.node) : [];
        return nodes.every((node) => online.includes(node));
      },
      120_000,
    ).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\n${fleetLogTails(plan)}`, { cause: error });
    });
    return state;
  } catch (error) {
    await fleetDown(state);
    throw error;
  }
}

/**
 * Removes everything the fleet made: the gateway, agents (SIGTERM: they end their QEMUs), servers and relays by PID,
 * then every namespace (anything still in one is killed), the bridge and veths with them, and the sockets.
 * Never throws; returns the PIDs still running afterwards (none expected).
 */
export async function fleetDown(state: FleetState): Promise<number[]> {
  const { plan } = state;
  await endProcess(plan.dir, state.gateway);
  await Promise.all(Object.values(state.agents).map((pid) => endProcess(plan.dir, pid)));
  await Promise.all(Object.values(state.servers).map((pid) => endProcess(plan.dir, pid)));
  await Promise.all(Object.values(state.relays).map((pid) => endProcess(plan.dir, pid)));
  const left: number[] = [];
  for (const netns of [...state.namespaces].reverse()) left.push(...removeTestNetns(netns));
  await rm(join(plan.dir, 'sockets'), { recursive: true, force: true });
  await rm(stateFile(plan.dir), { force: true });
  return left;
}

/** What runs and what the gateway says (for `fleet status`). */
export async function fleetStatus(state: FleetState): Promise<string[]> {
  const lines: string[] = [];
  const show = (what: string, pid: number | undefined) => lines.push(`${what.padEnd(18)} ${pid === undefined ? '-' : `pid ${pid}`} ${pid !== undefined && processRunning(pid) ? 'running' : 'not running'}`);
  for (const host of state.plan.hosts) {
    show(`nats-server ${host.node}`, state.servers[host.node]);
    show(`agent ${host.node}`, state.agents[host.node]);
  }
  show('gateway', state.gateway);
  const nodes = await gatewayRequest(state.plan, 'GET', '/v1/nodes').catch((error: unknown) => ({ status: 0, body: String(error) }));
  lines.push(`GET /v1/nodes: ${nodes.status} ${JSON.stringify(nodes.body)}`);
  return lines;
}

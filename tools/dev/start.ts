import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { nodeNameFromHost } from '@virtbus/agent';
import { builtBundle, freePort, REPO_ROOT, requireBinary } from '@virtbus/testing';

/** `npm start`: an embedded nats-server (unless NATS_URL is set), one agent named after the host, and the gateway. */
const stateRoot = process.env.VIRTBUS_DEV_DIR ?? join(REPO_ROOT, '.virtbus');
const node = process.env.VIRTBUS_NODE ?? nodeNameFromHost();
const gatewayPort = Number(process.env.GATEWAY_PORT ?? 8080);
const children: { name: string; child: ChildProcess }[] = [];

function run(name: string, command: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(command, args, { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit'] });
  children.push({ name, child });
  child.once('exit', (code, signal) => {
    if (!stopping) {
      console.error(`[virtbus] ${name} exited (${code ?? signal}); stopping the stack`);
      void stop(1);
    }
  });
  return child;
}

async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function waitForPort(port: number, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await portOpen(port)) return;
    await sleep(100);
  }
  throw new Error(`${what} did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

let stopping = false;
async function stop(code: number): Promise<never> {
  stopping = true;
  for (const { child } of [...children].reverse()) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  process.exit(code);
}

process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

async function main(): Promise<void> {
  await mkdir(stateRoot, { recursive: true, mode: 0o700 });
  let natsUrl = process.env.NATS_URL;
  if (!natsUrl) {
    const natsPort = (await portOpen(4222)) ? await freePort() : 4222;
    const configPath = join(stateRoot, 'nats-server.conf');
    await writeFile(configPath, `listen: "127.0.0.1:${natsPort}"\njetstream { store_dir: "${join(stateRoot, 'jetstream')}" }\nlog_file: "${join(stateRoot, 'nats-server.log')}"\n`);
    run('nats-server', requireBinary('nats-server'), ['-c', configPath]);
    await waitForPort(natsPort, 'nats-server');
    natsUrl = `nats://127.0.0.1:${natsPort}`;
  }
  // the built bundles (npm start builds first): the dev stack runs what install.mjs ships; no /etc/virtbus config
  const metricsPort = (await portOpen(9177)) ? await freePort() : 9177;
  run('agent', process.execPath, [
    builtBundle('virtbus-agent'),
    '--config',
    'none',
    '--node',
    node,
    '--nats',
    natsUrl,
    '--state-dir',
    join(stateRoot, 'agents', node),
    '--metrics-address',
    `127.0.0.1:${metricsPort}`,
  ]);
  run('gateway', process.execPath, [builtBundle('virtbus-gateway'), '--config', 'none', '--nats', natsUrl, '--host', '127.0.0.1', '--port', String(gatewayPort)]);
  await waitForPort(gatewayPort, 'gateway');
  const api = `http://127.0.0.1:${gatewayPort}`;
  console.log(`
virtbus is running (Ctrl-C stops it; domains keep running)
  node         ${node}
  NATS         ${natsUrl}${process.env.NATS_URL ? '' : ' (embedded nats-server with JetStream)'}
  API          ${api}/v1/nodes
  API docs     ${api}/docs   (OpenAPI: ${api}/openapi.json)
  events       curl -N ${api}/v1/events
  metrics      http://127.0.0.1:${metricsPort}/metrics (agent), ${api}/metrics (gateway)
  CLI          node dist/virtbus.cjs --url ${api} list --all   (installed: virtbus, see docs/INSTALL.md)
  state        ${stateRoot}
  try          curl -s -XPOST ${api}/v1/nodes/${node}/domains -H 'content-type: application/json' -d '{"name":"demo","driver":"test"}'
               curl -s -XPUT ${api}/v1/nodes/${node}/domains/demo/state -H 'content-type: application/json' -d '{"action":"start"}'
`);
}

main().catch((error: unknown) => {
  console.error(`[virtbus] could not start: ${(error as Error).message}`);
  void stop(1);
});

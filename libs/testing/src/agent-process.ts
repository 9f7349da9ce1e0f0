import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { VirtClient } from '@virtbus/client';
import { builtBundle } from './built.js';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Agent flags for scale and durability runs: no metrics listener, no stats sampling. */
export const QUIET_AGENT_ARGS: readonly string[] = ['--metrics-address', 'off', '--stats-interval', '0'];

export interface AgentProcessOptions {
  node: string;
  natsUrl: string;
  stateDir: string;
  drivers?: string;
  extraArgs?: readonly string[];
  /** Options for node itself, before the bundle (e.g. --inspect=127.0.0.1:0 for a bench's forced GC). */
  nodeArgs?: string[];
  env?: Record<string, string>;
  /** Wait until the agent answers node.info (default true). */
  waitReady?: boolean;
  /** How the readiness probe connects (TLS, identity); plain `natsUrl` by default. */
  readyConnection?: NodeConnectionOptions;
  /** Pause between readiness probes (default 100 ms); a bench timing starts polls finer. */
  readyPollMs?: number;
}

export interface AgentProcess {
  readonly pid: number;
  readonly node: string;
  readonly output: () => string;
  /** Resolves with the exit code once the process is gone. */
  readonly exited: Promise<number | null>;
  stop(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Node's arguments for the built agent (dist/virtbus-agent.mjs) with a test's settings; also what tools/fleet runs in its namespaces. */
export function agentArgs(options: Omit<AgentProcessOptions, 'env' | 'waitReady' | 'readyConnection'>): string[] {
  return [
    ...(options.nodeArgs ?? []),
    builtBundle('virtbus-agent'),
    // a host's /etc/virtbus/agent.env must not reach a test agent
    '--config',
    'none',
    '--node',
    options.node,
    '--nats',
    options.natsUrl,
    '--state-dir',
    options.stateDir,
    '--drivers',
    options.drivers ?? 'test',
    // info: start-up lines, so an agent that is not ready in time shows how far it got
    '--log-level',
    'info',
    // Test agents run side by side: any free metrics port unless extraArgs names one (the last value wins).
    '--metrics-address',
    '127.0.0.1:0',
    ...(options.extraArgs ?? []),
  ];
}

/** Runs the built agent (dist/virtbus-agent.mjs, what install.mjs ships) as its own process, like a deployment would. */
export async function spawnAgent(options: AgentProcessOptions): Promise<AgentProcess> {
  const args = agentArgs(options);
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const handle: AgentProcess = {
    pid: child.pid!,
    node: options.node,
    output: () => output,
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const result = await Promise.race([exited.then(() => 'exited'), sleep(10_000).then(() => 'timeout')]);
      if (result === 'timeout') {
        child.kill('SIGKILL');
        await exited;
      }
    },
    async kill(signal = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
  if (options.waitReady !== false) await waitForAgent(handle, options.readyConnection ?? { servers: options.natsUrl }, options.readyPollMs);
  return handle;
}

async function waitForAgent(agent: AgentProcess, connection: NodeConnectionOptions, pollMs = 100, timeoutMs = 60_000): Promise<void> {
  const nc: NatsConnection = await connect(connection);
  const client = new VirtClient(nc);
  const deadline = Date.now() + timeoutMs;
  let exitCode: number | null | undefined;
  let lastError: unknown;
  void agent.exited.then((code) => {
    exitCode = code;
  });
  try {
    while (Date.now() < deadline) {
      if (exitCode !== undefined) throw new Error(`agent ${agent.node} exited (${exitCode}) before it was ready:\n${agent.output()}`);
      try {
        await client.call(agent.node, 'node.info', {}, { timeoutMs: 1000 });
        return;
      } catch (error) {
        lastError = error;
        await sleep(pollMs);
      }
    }
    await agent.kill();
    throw new Error(`agent ${agent.node} was not ready within ${timeoutMs} ms (last node.info: ${String(lastError)}):\n${agent.output()}`);
  } finally {
    await nc.close();
  }
}

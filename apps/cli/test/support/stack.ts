import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startGateway } from '@virtbus/gateway';
import { addTestNetns, processesMentioning, removeTestNetns, spawnAgent, startNatsServer, type AgentProcess, type NatsServerHandle } from '@virtbus/testing';
import { run } from '../../src/main.js';

export interface CliStackOptions {
  /** One agent per node name, each with its own state dir. */
  nodes: string[];
  /** Run the agents with `--netns` in a network namespace made for the stack (and removed with it). */
  netns?: boolean;
  /** The agents' --drivers (default: the test driver). */
  drivers?: string;
  /** Passed before every command, e.g. ['--node', 'n1']. */
  defaultArgs?: string[];
}

export interface CliStack {
  workDir: string;
  gatewayUrl: string;
  netns: string | undefined;
  /** Runs the CLI in process against the stack's gateway; output lines joined. */
  cli(...args: string[]): Promise<{ code: number; text: string }>;
  close(): Promise<void>;
}

/** A real nats-server, agents and an in-process gateway on loopback for CLI tests; close() removes all of it. */
export async function startCliStack(options: CliStackOptions): Promise<CliStack> {
  const netns = options.netns ? `vbt-cli-${randomBytes(4).toString('hex')}` : undefined;
  const workDir = await mkdtemp(join(tmpdir(), 'virtbus-cli-'));
  let nats: NatsServerHandle | undefined;
  let nc: NatsConnection | undefined;
  const agents: AgentProcess[] = [];
  let gateway: Awaited<ReturnType<typeof startGateway>> | undefined;
  const close = async () => {
    await gateway?.close();
    await Promise.all(agents.map((agent) => agent.stop()));
    await nc?.close();
    await nats?.stop();
    // a dnsmasq left by a failed test lives in the namespace and goes with it
    const stillRunning = netns ? removeTestNetns(netns) : [];
    const leftovers = processesMentioning(workDir);
    await rm(workDir, { recursive: true, force: true });
    // teardown returns only when nothing of the stack runs any more
    if (stillRunning.length > 0 || leftovers.length > 0) throw new Error(`the CLI stack left processes behind: ${[...stillRunning.map(String), ...leftovers].join('; ')}`);
  };
  try {
    if (netns) addTestNetns(netns);
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    const natsUrl = nats.url;
    // One after another: the first agent creates the event stream; racing JetStream set-up on a loaded host can time out.
    for (const node of options.nodes) {
      agents.push(await spawnAgent({ node, natsUrl, stateDir: join(workDir, node), ...(options.drivers ? { drivers: options.drivers } : {}), ...(netns ? { extraArgs: ['--netns', netns], env: { VIRTBUS_STATS_INTERVAL: '0' } } : {}) }));
    }
    gateway = await startGateway({ nc, host: '127.0.0.1', port: 0, discoveryWaitMs: 300 });
  } catch (error) {
    await close();
    throw error;
  }
  const gatewayUrl = gateway.url;
  return {
    workDir,
    gatewayUrl,
    netns,
    async cli(...args: string[]) {
      const lines: string[] = [];
      const code = await run(['--url', gatewayUrl, ...(options.defaultArgs ?? []), ...args], (text) => lines.push(text));
      return { code, text: lines.join('\n') };
    },
    close,
  };
}

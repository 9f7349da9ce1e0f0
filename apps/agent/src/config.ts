import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { VirtError } from '@virtbus/api-contract';
import { DriverNames, type DriverName } from '@virtbus/drivers';
import type { AgentConfig } from './agent.js';

/** A node name from the host name: subject-safe characters only. */
export function nodeNameFromHost(host = hostname()): string {
  const name = host.split('.')[0]!.replace(/[^A-Za-z0-9_-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 63);
  return name || 'node';
}

export function defaultStateDir(node: string): string {
  return process.getuid?.() === 0 ? join('/var/lib/virtbus', node) : join(homedir(), '.local/state/virtbus', node);
}

export function parseDriverList(text: string): DriverName[] {
  const names = text.split(',').map((name) => name.trim()).filter(Boolean);
  for (const name of names) {
    if (!(DriverNames as string[]).includes(name)) throw new VirtError('INVALID_ARG', `unknown driver ${name}; known: ${DriverNames.join(', ')}`);
  }
  return names as DriverName[];
}

export const USAGE = `virtbus agent: serves one node's hypervisors on NATS

  --node NAME          node name (default: VIRTBUS_NODE or the host name)
  --nats URL           NATS server URL(s), comma separated (default: NATS_URL or nats://127.0.0.1:4222)
  --state-dir DIR      durable state (default: VIRTBUS_STATE_DIR or /var/lib/virtbus/<node>)
  --drivers LIST       drivers to load (default: VIRTBUS_DRIVERS or all: ${DriverNames.join(',')})
  --log-level LEVEL    pino level (default: info)
`;

export interface AgentCliConfig extends AgentConfig {
  logLevel: string;
}

export function configFromArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): AgentCliConfig | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      node: { type: 'string' },
      nats: { type: 'string' },
      'state-dir': { type: 'string' },
      drivers: { type: 'string' },
      'log-level': { type: 'string' },
      'test-latency-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const node = values.node ?? env.VIRTBUS_NODE ?? nodeNameFromHost();
  const latency = Number(values['test-latency-ms'] ?? env.VIRTBUS_TEST_DRIVER_LATENCY_MS ?? 0);
  return {
    node,
    nats: { servers: (values.nats ?? env.NATS_URL ?? 'nats://127.0.0.1:4222').split(',') },
    stateDir: values['state-dir'] ?? env.VIRTBUS_STATE_DIR ?? defaultStateDir(node),
    drivers: parseDriverList(values.drivers ?? env.VIRTBUS_DRIVERS ?? DriverNames.join(',')),
    driverOptions: { test: { latencyMs: latency } },
    logLevel: values['log-level'] ?? env.VIRTBUS_LOG_LEVEL ?? 'info',
  };
}

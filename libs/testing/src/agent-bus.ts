import { VirtClient } from '@virtbus/client';
import type { NatsServerOptions } from './nats-server.js';
import { useNatsBus, type NatsBus } from './nats-bus.js';
import { useTempDir } from './temp-dir.js';

/** What a test of one agent works with: a NATS bus, a client of the agent API on it, and a directory of its own. */
export interface AgentBus extends NatsBus {
  readonly client: VirtClient;
  /** A fresh directory for the agent's state (and anything else of the test), removed after the block. */
  readonly dir: string;
}

/** useNatsBus plus a VirtClient on its connection plus useTempDir(`dirPrefix`), for the enclosing file or describe block. */
export function useAgentBus(dirPrefix: string, options?: NatsServerOptions | (() => NatsServerOptions)): AgentBus {
  const bus = useNatsBus(options);
  const dir = useTempDir(dirPrefix);
  let client: VirtClient | undefined;
  return {
    get server() {
      return bus.server;
    },
    get nc() {
      return bus.nc;
    },
    get client() {
      client ??= new VirtClient(bus.nc);
      return client;
    },
    get dir() {
      return dir.path;
    },
  };
}

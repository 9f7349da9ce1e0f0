import type { ConnectionOptions } from '@nats-io/transport-node';

/**
 * How every virtbus process connects: several servers, tried in random order, and reconnecting forever with
 * jittered waits, so a long outage (or a lost server) never leaves a process with a closed connection.
 */
export const RECONNECT_FOREVER = {
  maxReconnectAttempts: -1,
  reconnectTimeWait: 1000,
  reconnectJitter: 500,
  reconnectJitterTLS: 1000,
  pingInterval: 10_000,
  maxPingOut: 3,
} as const satisfies Partial<ConnectionOptions>;

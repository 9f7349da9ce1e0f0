import { connect, type NatsConnection } from '@nats-io/transport-node';
import { buildApp, type GatewayDeps, type GatewayApp } from './app.js';

export { buildApp, DEFAULT_BODY_LIMIT, DEFAULT_REQUEST_TIMEOUT_MS, type GatewayApp, type GatewayDeps } from './app.js';
export { createAgentClient, type AgentClient, type NatsSource } from './plugins/agent-client.js';
export { toErrorBody } from './plugins/errors.js';
export type { TraceInjector } from './trace.js';

export interface GatewayOptions extends Omit<GatewayDeps, 'nc'> {
  /** NATS server URL(s), used when no connection is given; the gateway then owns and drains it. */
  natsUrl?: string | string[];
  nc?: NatsConnection;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
}

export interface RunningGateway {
  readonly url: string;
  readonly app: GatewayApp;
  close(): Promise<void>;
}

export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const ownsConnection = !options.nc;
  const nc = options.nc ?? (await connect({ servers: options.natsUrl ?? 'nats://127.0.0.1:4222', name: 'virtbus-gateway' }));
  const { natsUrl: _natsUrl, host = '127.0.0.1', port = 0, ...deps } = options;
  let app: GatewayApp;
  try {
    app = await buildApp({ ...deps, nc });
    await app.listen({ host, port });
  } catch (error) {
    if (ownsConnection) await nc.close();
    throw error;
  }
  const address = app.server.address();
  const boundPort = typeof address === 'object' && address ? address.port : port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${boundPort}`,
    app,
    async close() {
      await app.close();
      if (ownsConnection) await nc.drain();
    },
  };
}

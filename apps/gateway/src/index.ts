import { readFile } from 'node:fs/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { RECONNECT_FOREVER, tuneNatsBuffers } from '@virtbus/client';
import { assertSecureListen, natsConnectionOptions, type NatsClientConfig } from '@virtbus/security';
import { buildApp, type GatewayDeps, type GatewayApp } from './app.js';

export { buildApp, DEFAULT_BODY_LIMIT, DEFAULT_REQUEST_TIMEOUT_MS, type GatewayApp, type GatewayDeps } from './app.js';
export { createAgentClient, type AgentClient, type NatsSource } from './plugins/agent-client.js';
export { toErrorBody } from './plugins/errors.js';
export { DEFAULT_LIMITS, type GatewayLimits } from './plugins/limits.js';
export { createGatewayMonitoring } from './plugins/monitoring.js';
export type { TraceInjector } from './trace.js';
export { auditRecordOf, type GatewaySecurityOptions } from './plugins/security.js';

export interface GatewayTlsFiles {
  cert: string;
  key: string;
  /** CA of client certificates; with it the server asks for one (optional, verified when present). */
  ca?: string;
}

export interface GatewayOptions extends Omit<GatewayDeps, 'nc'> {
  /** NATS server URL(s), used when no connection is given; the gateway then owns and drains it. */
  natsUrl?: string | string[];
  /** TLS files, credentials and inbox prefix of the gateway's bus identity (see natsClientConfigFromEnv). */
  natsConfig?: NatsClientConfig;
  nc?: NatsConnection;
  /** Serve HTTPS; without it the gateway refuses to listen beyond loopback unless allowInsecureListen. */
  tls?: GatewayTlsFiles;
  allowInsecureListen?: boolean;
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
  const { natsUrl, natsConfig, nc: given, tls, allowInsecureListen, host = '127.0.0.1', port = 0, ...deps } = options;
  assertSecureListen(host, { tls: tls !== undefined, allowInsecure: allowInsecureListen });
  const https = tls
    ? {
        cert: await readFile(tls.cert),
        key: await readFile(tls.key),
        // token clients bring no certificate; the auth plugin trusts only certificates the CA verified
        ...(tls.ca ? { ca: await readFile(tls.ca), requestCert: true, rejectUnauthorized: false } : {}),
      }
    : undefined;
  const ownsConnection = !given;
  const url = natsUrl === undefined ? natsConfig?.url : Array.isArray(natsUrl) ? natsUrl.join(',') : natsUrl;
  // reconnects forever: a closed connection would leave the gateway answering 503 until restarted
  tuneNatsBuffers();
  const nc = given ?? (await connect({ name: 'virtbus-gateway', noAsyncTraces: true, ...RECONNECT_FOREVER, ...natsConnectionOptions({ ...natsConfig, url: url ?? 'nats://127.0.0.1:4222' }) }));
  let app: GatewayApp;
  try {
    app = await buildApp({ ...deps, nc, ...(https ? { https } : {}), security: { ...deps.security, listenHost: host } });
    await app.listen({ host, port });
  } catch (error) {
    if (ownsConnection) await nc.close();
    throw error;
  }
  const address = app.server.address();
  const boundPort = typeof address === 'object' && address ? address.port : port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `${tls ? 'https' : 'http'}://${urlHost}:${boundPort}`,
    app,
    async close() {
      await app.close();
      if (ownsConnection) await nc.drain();
    },
  };
}

import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Server as HttpsServer } from 'node:https';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { daemonEnvironment, loadTokenFile, NATS_IDENTITY_OPTIONS, natsClientConfigFromFlags, watchFiles, type TokenRecord } from '@virtbus/security';
import { initTracing } from '@virtbus/monitoring';
import { createGatewayMonitoring, startGateway, type RunningGateway } from './index.js';

/** The gateway's version in trace resources (apps/gateway/package.json). */
const GATEWAY_VERSION = '0.1.0';

/** The gateway's config file when no --config names one (read only if it exists). */
const GATEWAY_CONFIG_FILE = '/etc/virtbus/gateway.env';

const USAGE = `virtbus gateway: the HTTP API in front of the agents

  --config FILE          KEY=VALUE lines of the environment variables named here (default: ${GATEWAY_CONFIG_FILE} if it
                         exists; none = no file); the process environment and flags override it
  --nats URL             NATS server URL(s), comma separated (default: NATS_URL or nats://127.0.0.1:4222)
  --nats-ca/--nats-cert/--nats-key FILE, --nats-creds FILE, --nats-inbox-prefix P
                         the gateway's bus identity (default: NATS_CA, NATS_CERT, NATS_KEY, NATS_CREDS, NATS_INBOX_PREFIX)
  --allow-insecure-nats  plaintext NATS to a non-loopback server anyway (VIRTBUS_NATS_ALLOW_INSECURE=1)
  --host ADDR            listen address (default: GATEWAY_HOST or 127.0.0.1)
  --port N               listen port (default: GATEWAY_PORT or 8080)
  --tls-cert/--tls-key FILE  serve HTTPS (default: VIRTBUS_HTTPS_CERT, VIRTBUS_HTTPS_KEY)
  --tls-ca FILE          accept client certificates signed by this CA (default: VIRTBUS_HTTPS_CA)
  --allow-insecure-listen  plaintext HTTP on a non-loopback address anyway
  --tokens FILE          bearer-token file (tools/security/token.ts; default: VIRTBUS_TOKENS); reloaded when it changes (and on SIGHUP)
  --audit-log FILE       JSON-lines audit log of mutating calls (default: VIRTBUS_AUDIT_LOG; none when unset)
  --gateway-id ID        audit records go to virt.v1._audit.<ID> (default: VIRTBUS_GATEWAY_ID or gateway)
  --rate-limit N         requests per second per identity, burst 2N; 0 turns it off (default: VIRTBUS_RATE_LIMIT or 50)
  --max-event-streams N, --max-event-streams-per-identity N   open SSE streams (default 1000, 20)
  --max-consoles N, --max-consoles-per-identity N             open console WebSockets (default 200, 10)
  --console-idle-timeout S  close a console without traffic after S seconds, 0 = never (default 900)
  --body-timeout S       a JSON body must arrive within S seconds (default 30)

Also: LOG_LEVEL (default info), OTEL_* (tracing export).
With neither --tokens nor --tls-ca every caller is admin, and only on loopback (dev mode).
`;

function fail(message: string): never {
  process.stderr.write(`virtbus gateway: ${message}\n`);
  process.exit(2);
}

let env: NodeJS.ProcessEnv;
try {
  env = daemonEnvironment(process.argv.slice(2), GATEWAY_CONFIG_FILE);
} catch (error) {
  fail((error as Error).message);
}
const { values } = parseArgs({
  options: {
    config: { type: 'string' },
    nats: { type: 'string' },
    ...NATS_IDENTITY_OPTIONS,
    host: { type: 'string', default: env['GATEWAY_HOST'] ?? '127.0.0.1' },
    port: { type: 'string', default: env['GATEWAY_PORT'] ?? '8080' },
    'tls-cert': { type: 'string', default: env['VIRTBUS_HTTPS_CERT'] },
    'tls-key': { type: 'string', default: env['VIRTBUS_HTTPS_KEY'] },
    'tls-ca': { type: 'string', default: env['VIRTBUS_HTTPS_CA'] },
    'allow-insecure-listen': { type: 'boolean' },
    tokens: { type: 'string', default: env['VIRTBUS_TOKENS'] },
    'audit-log': { type: 'string', default: env['VIRTBUS_AUDIT_LOG'] },
    'gateway-id': { type: 'string', default: env['VIRTBUS_GATEWAY_ID'] ?? 'gateway' },
    'rate-limit': { type: 'string', default: env['VIRTBUS_RATE_LIMIT'] ?? '50' },
    'max-event-streams': { type: 'string' },
    'max-event-streams-per-identity': { type: 'string' },
    'max-consoles': { type: 'string' },
    'max-consoles-per-identity': { type: 'string' },
    'console-idle-timeout': { type: 'string' },
    'body-timeout': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});

if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65_535) fail(`invalid --port: ${values.port}`);
const rateLimit = Number(values['rate-limit']);
if (!Number.isFinite(rateLimit) || rateLimit < 0) fail(`invalid --rate-limit: ${values['rate-limit']}`);
if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) fail('HTTPS needs both --tls-cert and --tls-key');

function count(flag: string, scale = 1): number | undefined {
  const text = values[flag as keyof typeof values];
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) fail(`invalid --${flag}: ${String(text)}`);
  return value * scale;
}
const limits = {
  maxEventStreams: count('max-event-streams'),
  maxEventStreamsPerIdentity: count('max-event-streams-per-identity'),
  maxConsoles: count('max-consoles'),
  maxConsolesPerIdentity: count('max-consoles-per-identity'),
  consoleIdleTimeoutMs: count('console-idle-timeout', 1000),
  bodyTimeoutMs: count('body-timeout', 1000),
};

let tokens: readonly TokenRecord[] | undefined;
const tokenFile = values.tokens;
async function loadTokens(): Promise<void> {
  if (tokenFile) tokens = (await loadTokenFile(tokenFile)).tokens;
}

// exports spans only when the standard OTEL_* variables ask for it
const tracing = await initTracing({ serviceName: 'virtbus-gateway', serviceVersion: GATEWAY_VERSION });
const monitoring = createGatewayMonitoring();
let gateway: RunningGateway | undefined;
// A rejection nothing handled is a bug, but never a reason to drop every HTTP client and SSE stream.
process.on('unhandledRejection', (reason) => {
  if (gateway) gateway.app.log.error({ err: reason }, 'unhandled promise rejection');
  else process.stderr.write(`virtbus gateway: unhandled promise rejection: ${String(reason)}\n`);
  monitoring.metrics.countUnhandledRejection();
});
try {
  await loadTokens();
  gateway = await startGateway({
    monitoring,
    natsConfig: { ...natsClientConfigFromFlags(values, env), name: `virtbus-gateway-${hostname()}` },
    host: values.host,
    port,
    ...(values['tls-cert'] && values['tls-key']
      ? { tls: { cert: values['tls-cert'], key: values['tls-key'], ...(values['tls-ca'] ? { ca: values['tls-ca'] } : {}) } }
      : {}),
    allowInsecureListen: values['allow-insecure-listen'] ?? false,
    limits,
    security: {
      ...(tokenFile ? { tokens: () => tokens ?? [] } : {}),
      ...(values['tls-ca'] && values['tls-cert'] ? { certificates: {} } : {}),
      ...(values['audit-log'] ? { auditFile: values['audit-log'] } : {}),
      gatewayId: values['gateway-id'],
      ...(rateLimit > 0 ? { rateLimitPerSecond: rateLimit } : {}),
    },
    logger: { level: env['LOG_LEVEL'] ?? 'info' },
    // the build puts the UI beside the gateway bundle
    uiDir: join(dirname(fileURLToPath(import.meta.url)), 'web'),
  });
} catch (error) {
  fail((error as Error).message);
}
// the process ends in fail() when the gateway did not start
const running: RunningGateway = gateway ?? fail('the gateway did not start');
running.app.log.info({ url: running.url, nats: values.nats ?? env['NATS_URL'] ?? 'nats://127.0.0.1:4222' }, 'gateway listening');
if (!values['audit-log']) running.app.log.warn('no --audit-log: audit records go only to the bus');

function reloadTokens(why: string): void {
  loadTokens().then(
    () => running.app.log.info({ tokens: tokens?.length ?? 0, why }, 'token file reloaded'),
    (error: unknown) => running.app.log.error({ err: error }, 'token file reload failed; keeping the old tokens'),
  );
}

/** New HTTPS certificate, key or client CA: later handshakes use them (open connections keep theirs). */
function reloadTls(): void {
  const files = { cert: values['tls-cert'], key: values['tls-key'], ca: values['tls-ca'] };
  if (!files.cert || !files.key) return;
  Promise.all([readFile(files.cert), readFile(files.key), files.ca ? readFile(files.ca) : undefined]).then(
    ([cert, key, ca]) => {
      (running.app.server as HttpsServer).setSecureContext({ cert, key, ...(ca ? { ca } : {}) });
      running.app.log.info('TLS certificate, key and client CA reloaded');
    },
    (error: unknown) => running.app.log.error({ err: error }, 'TLS reload failed; keeping the old files'),
  );
}

// revocations apply within a second, without a signal
const unwatch = [
  ...(tokenFile ? [watchFiles([tokenFile], () => reloadTokens('changed'))] : []),
  ...(values['tls-cert'] && values['tls-key'] ? [watchFiles([values['tls-cert'], values['tls-key'], ...(values['tls-ca'] ? [values['tls-ca']] : [])], reloadTls)] : []),
];
process.on('SIGHUP', () => {
  reloadTokens('SIGHUP');
  reloadTls();
});

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    running.app.log.info({ signal }, 'gateway stopping');
    for (const stop of unwatch) stop();
    running.close().then(() => tracing.shutdown()).then(
      () => process.exit(0),
      (error: unknown) => {
        running.app.log.error({ err: error }, 'gateway close failed');
        process.exit(1);
      },
    );
  });
}

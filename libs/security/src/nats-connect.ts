import { readFileSync } from 'node:fs';
import { credsAuthenticator, nkeyAuthenticator, type NodeConnectionOptions } from '@nats-io/transport-node';
import { VirtError } from '@virtbus/api-contract';
import { isLoopbackHost } from './loopback.js';

export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

/** How a virtbus process reaches the bus; every field has an environment variable (see natsClientConfigFromEnv). */
export interface NatsClientConfig {
  /** One URL or a comma-separated list; `tls://` demands TLS. */
  url?: string;
  ca?: string;
  cert?: string;
  key?: string;
  /** A `.creds` file (JWT + nkey seed). */
  creds?: string;
  /** A file holding an nkey seed. */
  nkeySeed?: string;
  user?: string;
  pass?: string;
  token?: string;
  /** Per-identity reply inbox, required by the generated permissions (`_INBOX.<identity>`). */
  inboxPrefix?: string;
  name?: string;
  /** Connect in plaintext to a non-loopback server anyway. */
  allowInsecure?: boolean;
}

const truthy = (value: string | undefined) => value !== undefined && /^(1|true|yes)$/i.test(value);

export function natsClientConfigFromEnv(env: NodeJS.ProcessEnv = process.env): NatsClientConfig {
  const pick = (key: string) => (env[key] ? env[key] : undefined);
  return {
    url: pick('NATS_URL'),
    ca: pick('NATS_CA'),
    cert: pick('NATS_CERT'),
    key: pick('NATS_KEY'),
    creds: pick('NATS_CREDS'),
    nkeySeed: pick('NATS_NKEY'),
    user: pick('NATS_USER'),
    pass: pick('NATS_PASSWORD'),
    token: pick('NATS_TOKEN'),
    inboxPrefix: pick('NATS_INBOX_PREFIX'),
    allowInsecure: truthy(env.VIRTBUS_NATS_ALLOW_INSECURE),
  };
}

/** Flags win over the environment; undefined flags leave the environment's value. */
export function mergeNatsClientConfig(base: NatsClientConfig, override: NatsClientConfig): NatsClientConfig {
  const merged: NatsClientConfig = { ...base };
  for (const [key, value] of Object.entries(override) as [keyof NatsClientConfig, never][]) {
    if (value !== undefined) merged[key] = value;
  }
  return merged;
}

export function splitNatsServers(url: string): string[] {
  return url
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function parseServer(server: string): { scheme: string; host: string } {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(server) ? server : `nats://${server}`;
  let parsed: URL;
  try {
    parsed = new URL(withScheme);
  } catch (error) {
    throw new VirtError('INVALID_ARG', `invalid NATS URL: ${JSON.stringify(server)}`, { cause: error });
  }
  return { scheme: parsed.protocol.replace(/:$/, '').toLowerCase(), host: parsed.hostname };
}

/** A `tls://` or `wss://` URL, or configured TLS files, mean the client will not talk without TLS. */
export function natsTlsRequested(config: NatsClientConfig): boolean {
  if (config.ca || config.cert || config.key) return true;
  const servers = splitNatsServers(config.url ?? DEFAULT_NATS_URL);
  return servers.length > 0 && servers.every((s) => ['tls', 'wss'].includes(parseServer(s).scheme));
}

/** Refuses plaintext to anything but loopback: credentials and every request would cross the network in clear. */
export function assertSecureNatsUrl(url: string, options: { tls: boolean; allowInsecure?: boolean }): void {
  if (options.tls || options.allowInsecure) return;
  for (const server of splitNatsServers(url)) {
    const { scheme, host } = parseServer(server);
    if (scheme === 'tls' || scheme === 'wss') continue;
    if (!isLoopbackHost(host)) {
      throw new VirtError(
        'OPERATION_INVALID',
        `refusing a plaintext NATS connection to ${server}: use tls:// with NATS_CA/NATS_CERT/NATS_KEY, or force it with --allow-insecure-nats (VIRTBUS_NATS_ALLOW_INSECURE=1)`,
      );
    }
  }
}

/** Options for `connect()` of @nats-io/transport-node; checks the plaintext policy first. */
export function natsConnectionOptions(config: NatsClientConfig): NodeConnectionOptions {
  const url = config.url ?? DEFAULT_NATS_URL;
  const servers = splitNatsServers(url);
  if (servers.length === 0) throw new VirtError('INVALID_ARG', 'no NATS server URL given');
  const tls = natsTlsRequested(config);
  assertSecureNatsUrl(url, { tls, allowInsecure: config.allowInsecure });
  if ((config.cert === undefined) !== (config.key === undefined)) {
    throw new VirtError('INVALID_ARG', 'a NATS client certificate needs both NATS_CERT and NATS_KEY');
  }
  const options: NodeConnectionOptions = { servers };
  if (tls) {
    // an object (even empty) makes nats.js reject a server that does not offer TLS
    options.tls = {
      ...(config.ca ? { caFile: config.ca } : {}),
      ...(config.cert ? { certFile: config.cert } : {}),
      ...(config.key ? { keyFile: config.key } : {}),
    };
  }
  if (config.creds) options.authenticator = credsAuthenticator(readFileSync(config.creds));
  else if (config.nkeySeed) options.authenticator = nkeyAuthenticator(new TextEncoder().encode(readFileSync(config.nkeySeed, 'utf8').trim()));
  if (config.user !== undefined) options.user = config.user;
  if (config.pass !== undefined) options.pass = config.pass;
  if (config.token !== undefined) options.token = config.token;
  if (config.inboxPrefix) options.inboxPrefix = config.inboxPrefix;
  if (config.name) options.name = config.name;
  return options;
}

/** The NATS identity flags every virtbus process takes, as `node:util` parseArgs options. */
export const NATS_IDENTITY_OPTIONS = {
  'nats-ca': { type: 'string' },
  'nats-cert': { type: 'string' },
  'nats-key': { type: 'string' },
  'nats-creds': { type: 'string' },
  'nats-inbox-prefix': { type: 'string' },
  'allow-insecure-nats': { type: 'boolean' },
} as const;

/** Those flags (and `--nats`) over the `NATS_*` environment: flags win. */
export function natsClientConfigFromFlags(
  values: { nats?: string; 'nats-ca'?: string; 'nats-cert'?: string; 'nats-key'?: string; 'nats-creds'?: string; 'nats-inbox-prefix'?: string; 'allow-insecure-nats'?: boolean },
  env: NodeJS.ProcessEnv,
): NatsClientConfig {
  return mergeNatsClientConfig(natsClientConfigFromEnv(env), {
    url: values.nats,
    ca: values['nats-ca'],
    cert: values['nats-cert'],
    key: values['nats-key'],
    creds: values['nats-creds'],
    inboxPrefix: values['nats-inbox-prefix'],
    allowInsecure: values['allow-insecure-nats'] || undefined,
  });
}

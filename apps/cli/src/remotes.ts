import { mkdirSync, readFileSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { VirtError } from '@virtbus/api-contract';
import type { Connection } from './http.js';
import { table } from './format.js';

/** A command line mistake (unknown verb or option, missing argument, bad config): exit code 2. */
export class UsageError extends VirtError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_ARG', message, options);
  }
}

export interface Remote {
  url: string;
  /** A file holding the bearer token; read at each call so a rotated token needs no config change. */
  tokenFile?: string;
  ca?: string;
  cert?: string;
  key?: string;
}

export interface CliConfig {
  /** Remote used when neither --remote, --url nor VIRTBUS_URL says otherwise. */
  default?: string;
  remotes: Record<string, Remote>;
}

export const DEFAULT_URL = 'http://127.0.0.1:8080';
const REMOTE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const REMOTE_FIELDS = ['url', 'tokenFile', 'ca', 'cert', 'key'] as const;

/** ~/.config/virtbus/config.json, or under XDG_CONFIG_HOME; VIRTBUS_CONFIG names another file. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.VIRTBUS_CONFIG) return env.VIRTBUS_CONFIG;
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'virtbus', 'config.json');
}

function checkUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw new UsageError(`not a URL: ${url}`, { cause: error });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError(`a remote URL is http:// or https://, not ${parsed.protocol}`);
}

/** Reads and checks the config file; a missing file is an empty config. */
export function loadConfig(path = configPath()): CliConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { remotes: {} };
    throw new UsageError(`cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${path} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  const bad = (why: string) => new UsageError(`${path}: ${why}`);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('expected an object {"default": NAME, "remotes": {NAME: {"url": …}}}');
  const { default: defaultName, remotes = {}, ...unknown } = raw as Record<string, unknown>;
  if (Object.keys(unknown).length > 0) throw bad(`unknown key ${Object.keys(unknown)[0]}`);
  if (typeof remotes !== 'object' || remotes === null || Array.isArray(remotes)) throw bad('"remotes" must be an object');
  const config: CliConfig = { remotes: {} };
  for (const [name, value] of Object.entries(remotes)) {
    if (!REMOTE_NAME.test(name)) throw bad(`bad remote name ${JSON.stringify(name)}`);
    if (typeof value !== 'object' || value === null) throw bad(`remote ${name} must be an object`);
    const remote: Record<string, string> = {};
    for (const [field, fieldValue] of Object.entries(value)) {
      if (!(REMOTE_FIELDS as readonly string[]).includes(field)) throw bad(`remote ${name}: unknown key ${field}`);
      if (typeof fieldValue !== 'string') throw bad(`remote ${name}: ${field} must be a string`);
      remote[field] = fieldValue;
    }
    if (!remote.url) throw bad(`remote ${name} has no url`);
    config.remotes[name] = remote as unknown as Remote;
  }
  if (defaultName !== undefined) {
    if (typeof defaultName !== 'string' || !config.remotes[defaultName]) throw bad(`default ${JSON.stringify(defaultName)} is not a remote`);
    config.default = defaultName;
  }
  return config;
}

/** Atomic and private: the file names token files and keys. */
export function saveConfig(config: CliConfig, path = configPath()): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  const fd = openSync(temp, 'r');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(temp, path);
}

export interface ConnectionFlags {
  remote?: string | undefined;
  url?: string | undefined;
  token?: string | undefined;
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
}

/**
 * Flags, then VIRTBUS_* variables, then the remote (--remote NAME, else the config's default), then the local gateway.
 * A URL from a flag or the environment without --remote never borrows the default remote's token or certificates.
 */
export function resolveConnection(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env, load: () => CliConfig = loadConfig): Connection {
  const url = flags.url ?? env.VIRTBUS_URL;
  let remote: Remote | undefined;
  if (flags.remote !== undefined) {
    remote = load().remotes[flags.remote];
    if (!remote) throw new UsageError(`no remote ${flags.remote}; see virtbus remote list`);
  } else if (url === undefined) {
    const config = load();
    remote = config.default ? config.remotes[config.default] : undefined;
  }
  const token = flags.token ?? env.VIRTBUS_TOKEN ?? (remote?.tokenFile ? readToken(remote.tokenFile) : undefined);
  const ca = flags.ca ?? env.VIRTBUS_CA ?? remote?.ca;
  const cert = flags.cert ?? env.VIRTBUS_CERT ?? remote?.cert;
  const key = flags.key ?? env.VIRTBUS_KEY ?? remote?.key;
  return {
    url: url ?? remote?.url ?? DEFAULT_URL,
    ...(token ? { token } : {}),
    ...(ca ? { caFile: ca } : {}),
    ...(cert ? { certFile: cert } : {}),
    ...(key ? { keyFile: key } : {}),
  };
}

function readToken(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new UsageError(`cannot read the token file ${file}: ${(error as Error).message}`, { cause: error });
  }
}

export interface RemoteAddOptions {
  tokenFile?: string | undefined;
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
}

/** `virtbus remote add|list|remove|default`, like `incus remote`. */
export function remoteCommand(args: string[], options: RemoteAddOptions, out: (text: string) => void, json: boolean, path = configPath()): number {
  const [action, name, url] = args;
  const config = loadConfig(path);
  const needName = () => {
    if (!name) throw new UsageError(`remote ${action} needs a NAME`);
    return name;
  };
  const existing = () => {
    const remote = config.remotes[needName()];
    if (!remote) throw new UsageError(`no remote ${name}; see virtbus remote list`);
    return remote;
  };
  switch (action) {
    case 'add': {
      if (!name || !url) throw new UsageError('remote add needs NAME and URL');
      if (!REMOTE_NAME.test(name)) throw new UsageError(`bad remote name ${JSON.stringify(name)}: letters, digits, _ . - (up to 63)`);
      if (config.remotes[name]) throw new UsageError(`remote ${name} exists; remove it first`);
      checkUrl(url);
      if ((options.cert === undefined) !== (options.key === undefined)) throw new UsageError('a client certificate needs both --cert and --key');
      if (options.tokenFile) readToken(options.tokenFile);
      const remote: Remote = { url };
      if (options.tokenFile) remote.tokenFile = resolve(options.tokenFile);
      if (options.ca) remote.ca = resolve(options.ca);
      if (options.cert) remote.cert = resolve(options.cert);
      if (options.key) remote.key = resolve(options.key);
      config.remotes[name] = remote;
      config.default ??= name;
      saveConfig(config, path);
      out(`Remote ${name} added${config.default === name ? ' (default)' : ''}`);
      return 0;
    }
    case 'list': {
      if (json) out(JSON.stringify(config, null, 2));
      else {
        const rows = Object.entries(config.remotes).map(([remoteName, remote]) => [
          remoteName,
          remote.url,
          [remote.tokenFile ? 'token' : '', remote.cert ? 'certificate' : ''].filter(Boolean).join('+') || 'none',
          config.default === remoteName ? 'yes' : '',
        ]);
        out(table(['Name', 'URL', 'Auth', 'Default'], rows));
      }
      return 0;
    }
    case 'remove': {
      existing();
      delete config.remotes[name!];
      if (config.default === name) delete config.default;
      saveConfig(config, path);
      out(`Remote ${name} removed`);
      return 0;
    }
    case 'default': {
      if (!name) {
        out(config.default ?? `none (${DEFAULT_URL})`);
        return 0;
      }
      existing();
      config.default = name;
      saveConfig(config, path);
      out(`Default remote: ${name}`);
      return 0;
    }
    default:
      throw new UsageError(action ? `unknown remote action ${action}; see virtbus help remote` : 'remote needs add, list, remove or default');
  }
}

import { readFileSync } from 'node:fs';

/** Settings a daemon config file may hold: the daemons' own environment variables. */
const SETTING = /^(?:(?:VIRTBUS|NATS|GATEWAY|OTEL)_[A-Z0-9_]+|LOG_LEVEL)$/;

/** `--config FILE` (or `--config=FILE`) from a daemon's arguments; `none` turns the default file off. */
export function configFlag(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return undefined;
    if (arg === '--config') return argv[i + 1] ?? '';
    if (arg.startsWith('--config=')) return arg.slice('--config='.length);
  }
  return undefined;
}

/** Parses a systemd EnvironmentFile-style file: KEY=VALUE lines, `#` comments, optional single or double quotes. */
export function parseConfigFile(text: string, path: string): Record<string, string> {
  const settings: Record<string, string> = {};
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!match) throw new Error(`${path}:${index + 1}: expected KEY=VALUE`);
    const [, key, rawValue] = match as unknown as [string, string, string];
    if (!SETTING.test(key)) throw new Error(`${path}:${index + 1}: unknown setting ${key} (VIRTBUS_*, NATS_*, GATEWAY_*, OTEL_* or LOG_LEVEL)`);
    const quoted = /^(["'])(.*)\1$/.exec(rawValue);
    settings[key] = quoted ? quoted[2]! : rawValue;
  });
  return settings;
}

/**
 * The environment a daemon reads its options from: its own environment over the config file (flags override both).
 * The default file is read only when it exists; a file named with --config must exist.
 */
export function daemonEnvironment(argv: readonly string[], defaultPath: string, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const flag = configFlag(argv);
  if (flag === 'none') return env;
  if (flag === '') throw new Error('--config needs a FILE (or none)');
  const path = flag ?? defaultPath;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if (flag === undefined && (error as NodeJS.ErrnoException).code === 'ENOENT') return env;
    throw new Error(`cannot read the config file ${path}: ${(error as Error).message}`, { cause: error });
  }
  return { ...parseConfigFile(text, path), ...env };
}

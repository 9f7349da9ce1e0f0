import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_URL, loadConfig, remoteCommand, resolveConnection, UsageError, type CliConfig } from './remotes.js';

const dir = () => mkdtempSync(join(tmpdir(), 'virtbus-remotes-'));
const config: CliConfig = { default: 'prod', remotes: { prod: { url: 'https://prod:8443', tokenFile: '' }, lab: { url: 'http://lab:8080' } } };

describe('resolveConnection', () => {
  const tokenFile = join(dir(), 'token');
  writeFileSync(tokenFile, 'secret-token\n');
  config.remotes.prod!.tokenFile = tokenFile;
  const load = () => config;

  it('uses the default remote, its token file read and trimmed', () => {
    expect(resolveConnection({}, {}, load)).toEqual({ url: 'https://prod:8443', token: 'secret-token' });
  });

  it('--remote picks another; flags, then VIRTBUS_* override it setting by setting', () => {
    expect(resolveConnection({ remote: 'lab' }, {}, load)).toEqual({ url: 'http://lab:8080' });
    expect(resolveConnection({ remote: 'prod', token: 'flag' }, { VIRTBUS_TOKEN: 'env' }, load).token).toBe('flag');
    expect(resolveConnection({ remote: 'prod' }, { VIRTBUS_TOKEN: 'env', VIRTBUS_CA: '/ca' }, load)).toEqual({ url: 'https://prod:8443', token: 'env', caFile: '/ca' });
  });

  it('a URL from a flag or VIRTBUS_URL without --remote never takes the default remote or its token', () => {
    expect(resolveConnection({ url: 'http://elsewhere' }, {}, load)).toEqual({ url: 'http://elsewhere' });
    expect(resolveConnection({}, { VIRTBUS_URL: 'http://env' }, load)).toEqual({ url: 'http://env' });
  });

  it('no config: the local gateway; an unknown remote is a usage error', () => {
    expect(resolveConnection({}, {}, () => ({ remotes: {} }))).toEqual({ url: DEFAULT_URL });
    expect(() => resolveConnection({ remote: 'nope' }, {}, load)).toThrow(UsageError);
  });
});

describe('remote add/list/default/remove and the config file', () => {
  it('keeps remotes in a private file; the first added is the default', () => {
    const path = join(dir(), 'virtbus', 'config.json');
    const out: string[] = [];
    const remote = (...args: string[]) => remoteCommand(args, {}, (text) => out.push(text), false, path);
    remote('add', 'one', 'http://127.0.0.1:8080');
    remote('add', 'two', 'https://two:8443');
    expect(loadConfig(path)).toEqual({ default: 'one', remotes: { one: { url: 'http://127.0.0.1:8080' }, two: { url: 'https://two:8443' } } });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    remote('default', 'two');
    remote('list');
    expect(out.at(-1)).toMatch(/^two\s+https:\/\/two:8443\s+none\s+yes$/m);
    remote('remove', 'two');
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ remotes: { one: { url: 'http://127.0.0.1:8080' } } });
    expect(() => remote('add', 'one', 'http://x')).toThrow(/exists/);
    expect(() => remote('add', 'bad name', 'http://x')).toThrow(UsageError);
    expect(() => remote('add', 'ftp', 'ftp://x')).toThrow(/http/);
    expect(() => remoteCommand(['add', 'tf', 'http://x'], { tokenFile: '/no/such/file' }, () => undefined, false, path)).toThrow(/token file/);
    expect(() => remote('default', 'nope')).toThrow(UsageError);
  });

  it('refuses a config file it does not understand, naming the problem', () => {
    const path = join(dir(), 'config.json');
    const check = (content: string) => {
      writeFileSync(path, content);
      return () => loadConfig(path);
    };
    expect(loadConfig(join(dir(), 'missing.json'))).toEqual({ remotes: {} });
    expect(check('{')).toThrow(/not valid JSON/);
    expect(check('{"remotes": {"a": {"url": "http://a", "password": "x"}}}')).toThrow(/unknown key password/);
    expect(check('{"default": "b", "remotes": {"a": {"url": "http://a"}}}')).toThrow(/default "b" is not a remote/);
    expect(check('{"remotes": {"a": {}}}')).toThrow(/no url/);
  });
});

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configFlag, daemonEnvironment, parseConfigFile } from './daemon-config.js';

describe('daemon settings files', () => {
  it('parses KEY=VALUE lines with comments and quotes, and refuses other keys', () => {
    expect(parseConfigFile('# c\n\nVIRTBUS_NODE=n1\nNATS_URL = "nats://a:4222"\nexport LOG_LEVEL=\'debug\'\n', 'f')).toEqual({
      VIRTBUS_NODE: 'n1',
      NATS_URL: 'nats://a:4222',
      LOG_LEVEL: 'debug',
    });
    expect(() => parseConfigFile('PATH=/tmp\n', 'f')).toThrow(/f:1: unknown setting PATH/);
    expect(() => parseConfigFile('VIRTBUS_NODE\n', 'f')).toThrow(/f:1: expected KEY=VALUE/);
  });

  it('finds --config in the arguments', () => {
    expect(configFlag(['--node', 'a', '--config', '/x'])).toBe('/x');
    expect(configFlag(['--config=/y'])).toBe('/y');
    expect(configFlag(['--', '--config', '/z'])).toBeUndefined();
  });

  it('the environment overrides the file; a missing default file is fine, a named one is not', () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtbus-daemon-config-'));
    const file = join(dir, 'agent.env');
    writeFileSync(file, 'VIRTBUS_NODE=from-file\nNATS_URL=nats://file\n');
    expect(daemonEnvironment([], file, { NATS_URL: 'nats://env' })).toEqual({ VIRTBUS_NODE: 'from-file', NATS_URL: 'nats://env' });
    expect(daemonEnvironment(['--config', 'none'], file, {})).toEqual({});
    expect(daemonEnvironment([], join(dir, 'absent.env'), { A: '1' })).toEqual({ A: '1' });
    expect(() => daemonEnvironment(['--config', join(dir, 'absent.env')], file, {})).toThrow(/cannot read the config file/);
  });
});

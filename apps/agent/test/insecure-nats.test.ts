import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnAgent } from '@virtbus/testing';
import { configFromArgs } from '../src/config.js';

// 10.255.255.1 is never contacted: the policy check runs before any connection attempt
const REMOTE = 'nats://10.255.255.1:4222';

describe('agent refuses plaintext NATS off loopback', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtbus-insecure-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('exits non-zero at start-up with the refusal message', async () => {
    const stateDir = join(dir, 'state');
    const agent = await spawnAgent({ node: 'insecure', natsUrl: REMOTE, stateDir, waitReady: false });
    const code = await agent.exited;
    expect(code).not.toBe(0);
    expect(agent.output()).toContain('refusing a plaintext NATS connection to nats://10.255.255.1:4222');
    expect(agent.output()).toContain('--allow-insecure-nats');
    // it stopped before touching its state directory
    await expect(readdir(stateDir)).rejects.toThrow(/ENOENT/);
  });

  it('also refuses the URL from NATS_URL, and a list with one remote server', () => {
    expect(() => configFromArgs(['--node', 'n', '--state-dir', dir], { NATS_URL: REMOTE })).toThrow(/refusing a plaintext NATS connection/);
    expect(() => configFromArgs(['--node', 'n', '--state-dir', dir, '--nats', `nats://127.0.0.1:4222,${REMOTE}`], {})).toThrow(/10\.255\.255\.1/);
  });

  it('accepts loopback with no configuration, TLS off loopback, and the explicit override', () => {
    const loopback = configFromArgs(['--node', 'n', '--state-dir', dir], {});
    expect(loopback !== 'help' && loopback.nats.servers).toEqual(['nats://127.0.0.1:4222']);
    const tls = configFromArgs(['--node', 'n', '--state-dir', dir, '--nats', 'tls://10.255.255.1:4222'], {});
    expect(tls !== 'help' && tls.nats.tls).toEqual({});
    const forced = configFromArgs(['--node', 'n', '--state-dir', dir, '--nats', REMOTE, '--allow-insecure-nats'], {});
    expect(forced !== 'help' && forced.nats.servers).toEqual([REMOTE]);
    const forcedByEnv = configFromArgs(['--node', 'n', '--state-dir', dir, '--nats', REMOTE], { VIRTBUS_NATS_ALLOW_INSECURE: '1' });
    expect(forcedByEnv !== 'help' && forcedByEnv.nats.servers).toEqual([REMOTE]);
  });

  it('passes the identity files and the inbox prefix to the connection', () => {
    const config = configFromArgs(
      ['--node', 'n', '--state-dir', dir, '--nats', 'tls://nats.example:4222', '--nats-cert', '/c.crt', '--nats-key', '/c.key'],
      { NATS_CA: '/ca.crt', NATS_INBOX_PREFIX: '_INBOX.agent-n' },
    );
    expect(config !== 'help' && { tls: config.nats.tls, inbox: config.nats.inboxPrefix }).toEqual({
      tls: { caFile: '/ca.crt', certFile: '/c.crt', keyFile: '/c.key' },
      inbox: '_INBOX.agent-n',
    });
  });
});

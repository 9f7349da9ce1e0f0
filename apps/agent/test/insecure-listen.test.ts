import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnAgent, useTempDir } from '@virtbus/testing';

describe('agent refuses plaintext listeners off loopback', () => {
  const dir = useTempDir('virtbus-insecure-listen-');

  it('exits 2 with the refusal for --metrics-address 0.0.0.0:0, before touching its state directory', async () => {
    const stateDir = join(dir.path, 'state');
    // the NATS URL is never contacted: the check runs while the arguments are parsed
    const agent = await spawnAgent({ node: 'listen', natsUrl: 'nats://127.0.0.1:1', stateDir, waitReady: false, extraArgs: ['--metrics-address', '0.0.0.0:0'] });
    expect(await agent.exited).toBe(2);
    expect(agent.output()).toContain('refusing to serve /metrics on 0.0.0.0 without TLS');
    expect(agent.output()).toContain('--allow-insecure-listen');
    await expect(readdir(stateDir)).rejects.toThrow(/ENOENT/);
  });
});

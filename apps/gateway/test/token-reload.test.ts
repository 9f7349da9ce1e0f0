import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createToken, serializeTokenFile } from '@virtbus/security';
import { hasBinaryOrSkip, REPO_ROOT, startNatsServer, type NatsServerHandle } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

describe.runIf(hasBinaryOrSkip('nats-server'))('gateway process: the token file is watched', () => {
  let dir = '';
  let nats: NatsServerHandle;
  let gateway: ChildProcess | undefined;
  let url = '';
  const keep = createToken({ name: 'keep', role: 'read-only' });
  const revoked = createToken({ name: 'revoked', role: 'read-only' });
  const tokenFile = () => join(dir, 'tokens.json');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtbus-token-reload-'));
    nats = await startNatsServer();
    await writeFile(tokenFile(), serializeTokenFile({ version: 1, tokens: [keep.record, revoked.record] }), { mode: 0o600 });
    gateway = spawn(process.execPath, ['--import', 'tsx', 'apps/gateway/src/main.ts', '--port', '0', '--nats', nats.url, '--tokens', tokenFile(), '--rate-limit', '0'], {
      cwd: REPO_ROOT,
      env: { ...process.env, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    gateway.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    gateway.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    for (let i = 0; i < 300 && !url; i++) {
      url = /"url":"(http:\/\/[^"]+)"/.exec(output)?.[1] ?? '';
      if (!url) await sleep(100);
    }
    if (!url) throw new Error(`gateway did not start:\n${output}`);
  }, 60_000);

  afterAll(async () => {
    if (gateway && gateway.exitCode === null) {
      const exited = new Promise((resolve) => gateway?.once('exit', resolve));
      gateway.kill('SIGTERM');
      await exited;
    }
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const status = async (token: string) => (await fetch(`${url}/v1/nodes`, { headers: { authorization: `Bearer ${token}` } })).status;

  it('a token removed from the file is refused without SIGHUP', async () => {
    expect(await status(revoked.token)).toBe(200);
    await writeFile(tokenFile(), serializeTokenFile({ version: 1, tokens: [keep.record] }), { mode: 0o600 });
    let seen = 200;
    // the watcher applies the change within a second; allow ten before calling it broken
    for (let i = 0; i < 100 && seen !== 401; i++) {
      await sleep(100);
      seen = await status(revoked.token);
    }
    expect(seen).toBe(401);
    expect(await status(keep.token)).toBe(200);
  });
});

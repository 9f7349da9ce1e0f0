import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { hasBinaryOrSkip, requireBinary, useTempDir } from '@virtbus/testing';
import { loadTokenFile, verifyToken } from '@virtbus/security';

const run = promisify(execFile);
const tsx = (script: string, args: string[]) => run(process.execPath, ['--import', 'tsx', join('tools/security', script), ...args], { timeout: 60_000 });
const canRun = hasBinaryOrSkip('nats-server') && hasBinaryOrSkip('openssl');

describe.runIf(canRun)('tools/security command lines', () => {
  const dir = useTempDir('virtbus-sec-cli-');

  it('generate.ts writes configs nats-server accepts, clustered ones included', async () => {
    const out = join(dir.path, 'bundle');
    const { stdout } = await tsx('generate.ts', ['--out', out, '--nodes', 'a,b', '--nats-hosts', '127.0.0.1,localhost', '--jetstream-dir', join(dir.path, 'js'), '--client', 'ro-a:read-only:a']);
    expect(stdout).toContain('agent-b');
    expect(stdout).toContain('nats user "CN=ro-a,OU=nodes a,OU=read-only,O=virtbus"');
    const natsServer = requireBinary('nats-server');
    for (const conf of ['nats-server.conf', 'nats-server-127.0.0.1.conf', 'nats-server-localhost.conf']) {
      const { stderr, stdout: out2 } = await run(natsServer, ['-t', '-c', join(out, conf)]);
      expect(`${stdout}${out2}${stderr}`).toContain('is valid');
    }
    const env = await readFile(join(out, 'env', 'agent-a.env'), 'utf8');
    expect(env).toContain(`NATS_CERT=${join(out, 'certs', 'agent-a.crt')}`);
    expect(env).toContain('NATS_URL=tls://127.0.0.1:4222,tls://localhost:4222');
  });

  it('token.ts creates a token it prints once, lists and revokes it', async () => {
    const file = join(dir.path, 'tokens.json');
    const { stdout } = await tsx('token.ts', ['create', '--file', file, '--name', 'alice', '--role', 'operator', '--nodes', 'a', '--ttl', '1h']);
    const token = stdout.trim();
    const stored = await loadTokenFile(file);
    expect(await readFile(file, 'utf8')).not.toContain(token.split('_').slice(2).join('_'));
    const check = verifyToken(stored.tokens, token);
    expect(check.ok && [check.record.role, check.record.nodes]).toEqual(['operator', ['a']]);
    expect((await tsx('token.ts', ['list', '--file', file])).stdout).toContain('alice');
    await tsx('token.ts', ['revoke', '--file', file, '--name', 'alice']);
    expect((await loadTokenFile(file)).tokens).toEqual([]);
  });
});

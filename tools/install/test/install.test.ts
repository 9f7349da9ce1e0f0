import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtBundle, freePort, hasBinaryOrSkip, startNatsServer, waitFor, type NatsServerHandle } from '@virtbus/testing';

const run = promisify(execFile);
const PREFIX = '/usr/local';

let root: string;
let work: string;
const installed = (path: string) => join(root, path);
const bin = (name: string) => installed(join(PREFIX, 'bin', name));
const install = (...args: string[]) => run(process.execPath, [builtBundle('install'), '--destdir', root, '--prefix', PREFIX, ...args], { timeout: 60_000 });

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'virtbus-root-'));
  work = await mkdtemp(join(tmpdir(), 'virtbus-cwd-'));
  await install('--role', 'agent,gateway');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
  await rm(work, { recursive: true, force: true });
});

describe('install.mjs into a scratch root (--destdir)', () => {
  it('lays out commands, bundles, settings, state, units, docs and completion', async () => {
    for (const name of ['virtbus', 'virtbus-agent', 'virtbus-gateway']) expect((await stat(bin(name))).mode & 0o111).not.toBe(0);
    for (const file of ['virtbus.cjs', 'virtbus-agent.mjs', 'virtbus-gateway.mjs', 'virtbus-tracing.mjs', 'swagger-ui/static/index.html', 'web/index.html', 'installed.json']) {
      expect(existsSync(installed(join(PREFIX, 'lib/virtbus', file))), file).toBe(true);
    }
    expect((await stat(installed('/etc/virtbus/agent.env'))).mode & 0o777).toBe(0o600);
    expect(existsSync(installed('/etc/virtbus/gateway.env'))).toBe(true);
    expect((await stat(installed('/var/lib/virtbus'))).mode & 0o777).toBe(0o700);
    expect(await readFile(installed(join(PREFIX, 'share/bash-completion/completions/virtbus')), 'utf8')).toContain('complete -F _virtbus virtbus');
    expect(existsSync(installed(join(PREFIX, 'share/doc/virtbus/INSTALL.md')))).toBe(true);
    const agentUnit = await readFile(installed('/etc/systemd/system/virtbus-agent.service'), 'utf8');
    expect(agentUnit).toMatch(/^KillMode=process$/m);
    expect(agentUnit).toMatch(/^Restart=on-failure$/m);
    expect(agentUnit).toContain(`ExecStart=${PREFIX}/bin/virtbus-agent`);
    expect(await readFile(installed('/etc/systemd/system/virtbus-gateway.service'), 'utf8')).toMatch(/^Restart=on-failure$/m);
  });

  it('the daemon wrappers run their bundle with no node flags, as the tests and the bench run it (spawnAgent)', async () => {
    // --enable-source-maps cost the agent ~9 MiB idle and ~60 MiB more once it printed a stack (tools/bench idle memory)
    for (const daemon of ['virtbus-agent', 'virtbus-gateway']) {
      expect(await readFile(bin(daemon), 'utf8')).toMatch(new RegExp(`^exec ${process.execPath} "\\$lib/${daemon}\\.mjs" "\\$@"$`, 'm'));
    }
  });

  it('the installed virtbus runs from any directory, with no checkout, TypeScript or node_modules', async () => {
    const { stdout } = await run(bin('virtbus'), ['--version'], { cwd: work, env: { PATH: '/usr/bin:/bin' } });
    const { version } = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(stdout.trim()).toMatch(new RegExp(`^virtbus ${version.replaceAll('.', '\\.')}( \\([0-9a-f]+\\))?$`));
    const bundles = await Promise.all(['virtbus.cjs', 'virtbus-agent.mjs', 'virtbus-gateway.mjs'].map((file) => readFile(installed(join(PREFIX, 'lib/virtbus', file)), 'utf8')));
    for (const bundle of bundles) expect(bundle).not.toMatch(/from ['"](tsx|typescript|@virtbus\/[a-z-]+)['"]/);
    const usage = await run(bin('virtbus'), ['help', 'list'], { cwd: work });
    expect(usage.stdout).toMatch(/^usage: virtbus \[options\] list/);
  });

  it('systemd-analyze verify accepts both units in the scratch root', async (context) => {
    if (!hasBinaryOrSkip('systemd-analyze')) return context.skip('systemd-analyze is not installed');
    // the units need the distribution's targets (sysinit.target, network-online.target…) inside the root
    await mkdir(installed('/usr/lib/systemd'), { recursive: true });
    await cp('/lib/systemd/system', installed('/usr/lib/systemd/system'), { recursive: true, dereference: false });
    // and the host commands they run besides virtbus (ExecReload=/bin/kill)
    await mkdir(installed('/bin'), { recursive: true });
    await cp('/bin/kill', installed('/bin/kill'));
    for (const unit of ['virtbus-agent.service', 'virtbus-gateway.service']) {
      const result = await run('systemd-analyze', ['verify', `--root=${root}`, unit], { cwd: work }).catch((error: unknown) => error as { code: number; stderr: string });
      expect('code' in result ? `${result.code}: ${result.stderr}` : result.stderr.trim()).toBe('');
    }
    await writeFile(installed('/etc/systemd/system/virtbus-broken.service'), '[Service]\nExecStart=/usr/local/bin/no-such-command\nKillMode=sometimes\n');
    await expect(run('systemd-analyze', ['verify', `--root=${root}`, 'virtbus-broken.service'])).rejects.toThrow();
  });
});

describe('the installed daemons and CLI work together', () => {
  let nats: NatsServerHandle;
  const children: ChildProcess[] = [];
  let gatewayUrl: string;

  const start = (name: string, args: string[], env: Record<string, string> = {}) => {
    const child = spawn(bin(name), args, { cwd: work, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    children.push(child);
    return () => output;
  };

  beforeAll(async () => {
    nats = await startNatsServer();
    const port = await freePort();
    gatewayUrl = `http://127.0.0.1:${port}`;
    // the installed settings templates are read (and must parse) through --config
    start('virtbus-agent', ['--config', installed('/etc/virtbus/agent.env'), '--node', 'installed', '--nats', nats.url, '--state-dir', join(work, 'state'), '--drivers', 'test', '--metrics-address', '127.0.0.1:0', '--log-level', 'warn']);
    const gatewayOutput = start('virtbus-gateway', ['--config', installed('/etc/virtbus/gateway.env'), '--nats', nats.url, '--port', String(port)]);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const answer = await fetch(`${gatewayUrl}/v1/nodes`).then((response) => response.json() as Promise<{ nodes: { node: string; online: boolean }[] }>).catch(() => undefined);
      if (answer?.nodes.some((node) => node.node === 'installed' && node.online)) break;
      if (Date.now() > deadline) throw new Error(`the installed agent and gateway did not come up:\n${gatewayOutput()}`);
      await sleep(200);
    }
  });

  afterAll(async () => {
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(10_000).then(() => child.kill('SIGKILL'))]);
      }),
    );
    await nats?.stop();
  });

  it('defines and lists a domain through the installed CLI, picked by its default remote', async () => {
    const env = { PATH: '/usr/bin:/bin', XDG_CONFIG_HOME: join(work, 'config') };
    const cli = (...args: string[]) => run(bin('virtbus'), args, { cwd: work, env });
    expect((await cli('remote', 'add', 'here', gatewayUrl)).stdout.trim()).toBe('Remote here added (default)');
    expect((await cli('define', '--name', 'shipped', '--driver', 'test')).stdout).toMatch(/^Domain 'shipped' defined/);
    expect((await cli('list', '--all')).stdout).toMatch(/shipped\s+shutoff\s+test/);
    const failure = (await cli('--remote', 'nowhere', 'list').catch((error: unknown) => error)) as { code?: number };
    expect(failure.code).toBe(2);
    const unreachable = (await run(bin('virtbus'), ['--url', 'http://127.0.0.1:1', 'list'], { cwd: work, env }).catch((error: unknown) => error)) as { code?: number };
    expect(unreachable.code).toBe(3);
  });

  // after the CLI test: a second node would make its node-less define ambiguous
  it('an installed agent loads the tracing SDK from its own bundle when OTEL_* asks for spans', async () => {
    const output = start('virtbus-agent', ['--config', 'none', '--node', 'traced', '--nats', nats.url, '--state-dir', join(work, 'traced'), '--drivers', 'test', '--metrics-address', 'off', '--log-level', 'warn'], {
      OTEL_TRACES_EXPORTER: 'console',
    });
    // its start-up publishes events (the default pool), each in a span the console exporter prints
    await waitFor("a span on the traced agent's output", () => /traceId: '[0-9a-f]{32}'/.test(output()), 60_000, async () => output());
  });
});

describe('install.mjs --uninstall', () => {
  it('removes what it installed and keeps settings and state', async () => {
    await writeFile(installed('/var/lib/virtbus/keep-me'), 'state');
    await install('--uninstall');
    for (const path of ['bin/virtbus', 'bin/virtbus-agent', 'bin/virtbus-gateway', 'lib/virtbus', 'share/doc/virtbus', 'share/bash-completion/completions/virtbus']) {
      expect(existsSync(installed(join(PREFIX, path))), path).toBe(false);
    }
    expect(existsSync(installed('/etc/systemd/system/virtbus-agent.service'))).toBe(false);
    expect(existsSync(installed('/etc/virtbus/agent.env'))).toBe(true);
    expect(await readFile(installed('/var/lib/virtbus/keep-me'), 'utf8')).toBe('state');
  });
});

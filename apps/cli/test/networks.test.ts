import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startGateway } from '@virtbus/gateway';
import { hasBinaryOrSkip, spawnAgent, startNatsServer, type AgentProcess, type NatsServerHandle } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../src/main.js';

const netns = `vbt-clinet-${randomBytes(4).toString('hex')}`;
let nats: NatsServerHandle;
let nc: NatsConnection;
let agent: AgentProcess | undefined;
let gateway: Awaited<ReturnType<typeof startGateway>> | undefined;
let workDir: string;

async function cli(...args: string[]): Promise<{ code: number; text: string }> {
  const lines: string[] = [];
  const code = await run(['--url', gateway!.url, '--node', 'clinets', ...args], (text) => lines.push(text));
  return { code, text: lines.join('\n') };
}

describe.skipIf(!hasBinaryOrSkip('dnsmasq') || !hasBinaryOrSkip('nft') || !hasBinaryOrSkip('nsenter'))('virtbus CLI: net-* verbs and domifaddr (agent in a test network namespace)', () => {
  beforeAll(async () => {
    execFileSync('ip', ['netns', 'add', netns]);
    execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    nats = await startNatsServer();
    workDir = await mkdtemp(join(tmpdir(), 'virtbus-cli-nets-'));
    nc = await connect({ servers: nats.url });
    agent = await spawnAgent({ node: 'clinets', natsUrl: nats.url, stateDir: join(workDir, 'state'), extraArgs: ['--netns', netns], env: { VIRTBUS_STATS_INTERVAL: '0' } });
    gateway = await startGateway({ nc, host: '127.0.0.1', port: 0, discoveryWaitMs: 300 });
  });

  afterAll(async () => {
    await gateway?.close();
    await agent?.stop();
    await nc?.close();
    await nats?.stop();
    // a dnsmasq left by a failed test lives in our namespace: end it by PID before removing the namespace
    try {
      for (const pid of execFileSync('ip', ['netns', 'pids', netns], { encoding: 'utf8' }).split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
    } catch {
      // none
    }
    try {
      execFileSync('ip', ['netns', 'del', netns]);
    } catch {
      // never created
    }
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it('defines, starts, lists, shows leases, stops and undefines a network', async () => {
    const file = join(workDir, 'lan.json');
    await writeFile(file, JSON.stringify({ name: 'lan', mode: 'isolated', ipv4: { address: '10.91.0.1/24', dhcp: { ranges: [{ start: '10.91.0.10', end: '10.91.0.20' }] } } }));
    expect((await cli('net-define', file)).text).toMatch(/^Network lan defined \(/);
    expect((await cli('net-list')).text).not.toMatch(/^lan/m);
    expect((await cli('net-list', '--all')).text).toMatch(/^lan\s+inactive\s+no\s+yes\s+isolated\s+vb-lan$/m);
    expect((await cli('net-start', 'lan')).text).toBe('Network lan started');
    expect((await cli('net-info', 'lan')).text).toMatch(/^Active:\s+yes$/m);
    expect(execFileSync('ip', ['-n', netns, '-br', 'address', 'show', 'dev', 'vb-lan'], { encoding: 'utf8' })).toContain('10.91.0.1/24');
    expect((await cli('net-autostart', 'lan')).text).toBe('Network lan marked as autostarted');
    expect((await cli('net-dhcp-leases', 'lan')).text).toMatch(/^Expiry Time\s+MAC address/);

    const domFile = join(workDir, 'nicdom.json');
    await writeFile(domFile, JSON.stringify({ name: 'nicdom', driver: 'test', nics: [{ type: 'network', source: 'lan', mac: '52:54:00:91:00:01' }] }));
    await cli('define', domFile);
    expect(JSON.parse((await cli('--json', 'domifaddr', 'nicdom')).text)).toMatchObject({
      source: 'lease',
      interfaces: [{ index: 0, mac: '52:54:00:91:00:01', type: 'network', network: 'lan', addresses: [] }],
    });

    await writeFile(file, JSON.stringify({ name: 'clash', mode: 'isolated', ipv4: { address: '10.91.0.129/25' } }));
    await expect(cli('net-define', file)).rejects.toMatchObject({ code: 'INVALID_ARG' });
    await expect(cli('net-undefine', 'lan')).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    expect((await cli('net-destroy', 'lan')).text).toBe('Network lan destroyed');
    expect(execFileSync('ip', ['-n', netns, '-br', 'link'], { encoding: 'utf8' })).not.toContain('vb-lan');
    expect((await cli('net-undefine', 'lan')).text).toBe('Network lan has been undefined');
    expect((await cli('net-list', '--all')).text).not.toMatch(/^lan/m);
  });
});

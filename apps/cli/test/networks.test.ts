import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hasBinaryOrSkip } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCliStack, type CliStack } from './support/stack.js';

let stack: CliStack | undefined;
let workDir: string;
let netns: string;
const cli = (...args: string[]) => stack!.cli(...args);

describe.skipIf(!hasBinaryOrSkip('dnsmasq') || !hasBinaryOrSkip('nft') || !hasBinaryOrSkip('nsenter'))('virtbus CLI: net-* verbs and domifaddr (agent in a test network namespace)', () => {
  beforeAll(async () => {
    stack = await startCliStack({ nodes: ['clinets'], netns: true, defaultArgs: ['--node', 'clinets'] });
    workDir = stack.workDir;
    netns = stack.netns!;
  });

  afterAll(async () => {
    await stack?.close();
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

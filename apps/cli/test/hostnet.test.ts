import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hasBinaryOrSkip } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCliStack, type CliStack } from './support/stack.js';

let stack: CliStack | undefined;
let workDir: string;
const cli = (...args: string[]) => stack!.cli(...args);

describe.skipIf(!hasBinaryOrSkip('ip') || !hasBinaryOrSkip('nsenter'))('virtbus CLI: iface-* and nwfilter-* verbs (agent in a test network namespace)', () => {
  beforeAll(async () => {
    stack = await startCliStack({ nodes: ['clinet'], netns: true, defaultArgs: ['--node', 'clinet'] });
    workDir = stack.workDir;
  });

  afterAll(async () => {
    await stack?.close();
  });

  it('lists, begins, changes and rolls back host interfaces', async () => {
    expect((await cli('iface-list')).text).toMatch(/^lo\s+loopback\s+up\s+UNKNOWN\s+65536/m);
    expect((await cli('iface-begin', '--timeout', '60')).text).toMatch(/^Interface transaction \S+ begun/);
    expect((await cli('iface-bridge-add', 'vbcli0')).text).toMatch(/^vbcli0\s+bridge\s+up/m);
    expect((await cli('iface-addr-add', 'vbcli0', '192.0.2.9/24')).text).toMatch(/vbcli0.*192\.0\.2\.9\/24/);
    expect((await cli('iface-set', 'vbcli0', 'mtu=1400')).text).toMatch(/^vbcli0\s+bridge\s+up\s+\S+\s+1400/m);
    expect((await cli('iface-info', 'vbcli0')).text).toMatch(/^MTU:\s+1400$/m);
    expect((await cli('iface-rollback')).text).toMatch(/rolled back \(3 change\(s\)\)/);
    expect((await cli('iface-list')).text).not.toContain('vbcli0');
    await expect(cli('iface-commit')).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
  });

  it('defines, lists, replaces and undefines a rule set', async () => {
    const file = join(workDir, 'web.json');
    await writeFile(file, JSON.stringify({ name: 'web', antiSpoofing: { mac: true }, rules: [{ action: 'allow', direction: 'in', protocol: 'tcp', destinationPorts: ['80'] }] }));
    expect((await cli('nwfilter-define', file)).text).toBe('Network filter web defined (1 rule(s), anti-spoofing)');
    expect((await cli('nwfilter-list')).text).toMatch(/^web\s+1 rule\(s\), anti-spoofing$/m);
    await writeFile(file, JSON.stringify({ name: 'web', rules: [] }));
    expect((await cli('nwfilter-define', file)).text).toBe('Network filter web updated (0 rule(s))');
    expect(JSON.parse((await cli('nwfilter-dumpxml', 'web')).text)).toMatchObject({ name: 'web', rules: [], bindings: [] });
    await writeFile(file, JSON.stringify({ name: 'bad', rules: [{ action: 'drop', direction: 'in', protocol: 'udp', destinationPorts: ['9-1'] }] }));
    await expect(cli('nwfilter-define', file)).rejects.toMatchObject({ code: 'INVALID_ARG' });
    expect((await cli('nwfilter-undefine', 'web')).text).toBe('Network filter web undefined');
    expect((await cli('nwfilter-list')).text).not.toContain('web');
  });
});

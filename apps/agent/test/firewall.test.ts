import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { type FirewallRuleSetsPost } from '@virtbus/api-contract';
import { addTestNetns, hasBinaryOrSkip, rejectsWith, removeTestNetns, tearDown, useAgentBus } from '@virtbus/testing';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type Agent } from '../src/agent.js';

const run = promisify(execFile);
const HAVE_TOOLS = hasBinaryOrSkip('ip') && hasBinaryOrSkip('nft') && hasBinaryOrSkip('busybox') && hasBinaryOrSkip('nsenter');
const NODE = 'fwnode';
const suffix = randomBytes(3).toString('hex');
/** The agent's namespace: a bridge with a veth port standing in for a domain's tap. */
const hostNs = `vbt-fwh-${suffix}`;
/** The "guest" at the other end of the veth. */
const guestNs = `vbt-fwg-${suffix}`;
const PORT = 'vbport0';
const GUEST_MAC = '52:54:00:12:34:56';
const GATEWAY = '10.231.0.1';
const GUEST_IP = '10.231.0.2';
const FOREIGN = 'table inet vbt-foreign {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    ip saddr 203.0.113.9 drop\n  }\n}\n';

function inNs(netns: string, command: string, ...args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', netns, command, ...args], { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

/** One ping from the guest; busybox ping exits 0 when a reply came back. */
async function guestPings(from?: string): Promise<boolean> {
  return run('ip', ['netns', 'exec', guestNs, 'busybox', 'ping', '-c', '1', '-W', '1', ...(from ? ['-I', from] : []), GATEWAY]).then(
    () => true,
    () => false,
  );
}

/** A TCP connect from the bridge side to the guest's port. */
async function connects(port: number): Promise<boolean> {
  const script = `const s=require('net').connect(${port},'${GUEST_IP}');s.setTimeout(1500);s.on('connect',()=>process.exit(0));s.on('timeout',()=>process.exit(3));s.on('error',()=>process.exit(4));`;
  return run('ip', ['netns', 'exec', hostNs, process.execPath, '-e', script]).then(
    () => true,
    () => false,
  );
}

function nftTables(): string {
  return inNs(hostNs, 'nft', 'list', 'tables');
}

describe.skipIf(!HAVE_TOOLS)('firewall rule sets on a bridge port in test network namespaces', () => {
  const bus = useAgentBus('virtbus-fw-');
  let agent: Agent | undefined;
  let server: ChildProcess | undefined;
  let foreignBefore: string;

  beforeAll(async () => {
    addTestNetns(hostNs, { loopbackUp: false });
    addTestNetns(guestNs, { loopbackUp: false });
    const h = (...args: string[]) => execFileSync('ip', ['-n', hostNs, ...args]);
    const g = (...args: string[]) => execFileSync('ip', ['-n', guestNs, ...args]);
    h('link', 'set', 'lo', 'up');
    g('link', 'set', 'lo', 'up');
    h('link', 'add', 'vbbr0', 'type', 'bridge');
    h('addr', 'add', `${GATEWAY}/24`, 'dev', 'vbbr0');
    h('link', 'set', 'vbbr0', 'up');
    h('link', 'add', PORT, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', guestNs);
    h('link', 'set', PORT, 'master', 'vbbr0', 'up');
    g('link', 'set', 'eth0', 'address', GUEST_MAC);
    g('addr', 'add', `${GUEST_IP}/24`, 'dev', 'eth0');
    g('addr', 'add', '10.231.0.99/24', 'dev', 'eth0');
    g('link', 'set', 'eth0', 'up');
    // a table that is not virtbus's: it must come out of every test exactly as it went in
    execFileSync('ip', ['netns', 'exec', hostNs, 'nft', '-f', '-'], { input: FOREIGN });
    foreignBefore = inNs(hostNs, 'nft', 'list', 'table', 'inet', 'vbt-foreign');
    const listen = `const net=require('net');for(const p of [8080,8081])net.createServer(s=>{s.on('error',()=>{});s.end('hi');}).listen(p,'${GUEST_IP}');console.log('listening');`;
    server = spawn('ip', ['netns', 'exec', guestNs, process.execPath, '-e', listen], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => server!.stdout!.once('data', () => resolve()));
    agent = await startAgent({ node: NODE, nats: { servers: bus.server.url }, stateDir: bus.dir, drivers: ['test'], netns: hostNs, logger: pino({ level: 'silent' }), monitoring: { metricsAddress: 'off' } });
  });

  afterAll(async () => {
    try {
      await tearDown(agent);
    } finally {
      if (server?.pid && server.exitCode === null) server.kill('SIGKILL');
      // the node server is a child of `ip netns exec`, which exec()s it: one pid
      for (const ns of [hostNs, guestNs]) removeTestNetns(ns);
    }
  });

  const bind = (ruleSet: string, ips: string[] = [GUEST_IP]) => agent!.firewall.bind({ ruleSet, domain: 'test-domain', netns: hostNs, device: PORT, mac: GUEST_MAC, ips });
  const unbind = () => agent!.firewall.unbind(PORT, hostNs);

  it('drops ICMP while bound, and the ping comes back when unbound; the table goes with the last NIC', async () => {
    expect(await guestPings()).toBe(true);
    await bus.client.call(NODE, 'firewall.ruleset.define', { name: 'no-icmp', rules: [{ action: 'drop', direction: 'inout', protocol: 'icmp' }] });
    await bind('no-icmp');
    expect(await guestPings()).toBe(false);
    expect((await bus.client.call(NODE, 'firewall.ruleset.get', { name: 'no-icmp' })).bindings).toEqual([{ domain: 'test-domain', device: PORT, mac: GUEST_MAC, ips: [GUEST_IP] }]);
    await rejectsWith(bus.client.call(NODE, 'firewall.ruleset.delete', { name: 'no-icmp' }), 'OPERATION_INVALID');

    // updating the set re-applies it to the bound NIC at once
    await bus.client.call(NODE, 'firewall.ruleset.update', { name: 'no-icmp', ruleSet: { rules: [{ action: 'drop', direction: 'in', protocol: 'tcp', destinationPorts: ['9999'] }] } });
    expect(await guestPings()).toBe(true);
    await bus.client.call(NODE, 'firewall.ruleset.update', { name: 'no-icmp', ruleSet: { rules: [{ action: 'drop', direction: 'inout', protocol: 'icmp' }] } });
    expect(await guestPings()).toBe(false);

    await unbind();
    expect(await guestPings()).toBe(true);
    expect(nftTables()).not.toContain('virtbus-fw');
    expect(inNs(hostNs, 'nft', 'list', 'table', 'inet', 'vbt-foreign')).toBe(foreignBefore);
    await bus.client.call(NODE, 'firewall.ruleset.delete', { name: 'no-icmp' });
    expect((await bus.client.call(NODE, 'firewall.ruleset.list', {})).ruleSets).toEqual([]);
  });

  it('drops one TCP port and lets another through', async () => {
    expect(await connects(8080)).toBe(true);
    await bus.client.call(NODE, 'firewall.ruleset.define', { name: 'no-8080', rules: [{ action: 'drop', direction: 'in', protocol: 'tcp', destinationPorts: ['8080'] }] });
    await bind('no-8080');
    expect(await connects(8080)).toBe(false);
    expect(await connects(8081)).toBe(true);
    await unbind();
    expect(await connects(8080)).toBe(true);
    await bus.client.call(NODE, 'firewall.ruleset.delete', { name: 'no-8080' });
  });

  it('anti-spoofing drops packets from another source IP or MAC', async () => {
    await bus.client.call(NODE, 'firewall.ruleset.define', { name: 'clean', antiSpoofing: { mac: true, ip: true }, rules: [] });
    await bind('clean');
    expect(await guestPings()).toBe(true);
    expect(await guestPings('10.231.0.99')).toBe(false);
    execFileSync('ip', ['-n', guestNs, 'link', 'set', 'eth0', 'address', '52:54:00:66:66:66']);
    expect(await guestPings()).toBe(false);
    execFileSync('ip', ['-n', guestNs, 'link', 'set', 'eth0', 'address', GUEST_MAC]);
    await unbind();
    expect(await guestPings('10.231.0.99')).toBe(true);
    await bus.client.call(NODE, 'firewall.ruleset.delete', { name: 'clean' });
    expect(nftTables()).not.toContain('virtbus-fw');
    expect(inNs(hostNs, 'nft', 'list', 'table', 'inet', 'vbt-foreign')).toBe(foreignBefore);
  });

  it('refuses bad rule sets with INVALID_ARG and changes nothing', async () => {
    await bus.client.call(NODE, 'firewall.ruleset.define', { name: 'web', rules: [{ action: 'allow', direction: 'in', protocol: 'tcp', destinationPorts: ['80'] }] });
    await bind('web');
    const tableBefore = inNs(hostNs, 'nft', 'list', 'table', 'bridge', 'virtbus-fw');
    const listBefore = await bus.client.call(NODE, 'firewall.ruleset.list', {});
    const bad: FirewallRuleSetsPost['rules'][] = [
      [{ action: 'drop', direction: 'in', source: ['10.0.0.0/33'] }],
      [{ action: 'drop', direction: 'in', destination: ['2001:db8::g/64'] }],
      [{ action: 'drop', direction: 'in', protocol: 'tcp', destinationPorts: ['2000-1000'] }],
      [{ action: 'drop', direction: 'in', protocol: 'icmp', destinationPorts: ['80'] }],
    ];
    for (const rules of bad) {
      await rejectsWith(bus.client.call(NODE, 'firewall.ruleset.define', { name: 'bad', rules }), 'INVALID_ARG');
      await rejectsWith(bus.client.call(NODE, 'firewall.ruleset.update', { name: 'web', ruleSet: { rules } }), 'INVALID_ARG');
    }
    await rejectsWith(bus.client.call(NODE, 'firewall.ruleset.define', { name: 'web', rules: [] }), 'OPERATION_INVALID');
    expect(await bus.client.call(NODE, 'firewall.ruleset.list', {})).toEqual(listBefore);
    expect(inNs(hostNs, 'nft', 'list', 'table', 'bridge', 'virtbus-fw')).toBe(tableBefore);
    await unbind();
    await bus.client.call(NODE, 'firewall.ruleset.delete', { name: 'web' });
    await rejectsWith(bus.client.call(NODE, 'firewall.ruleset.get', { name: 'web' }), 'NOT_FOUND');
    expect(nftTables()).not.toContain('virtbus-fw');
    expect(inNs(hostNs, 'nft', 'list', 'table', 'inet', 'vbt-foreign')).toBe(foreignBefore);
  });
});

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type HostInterfaceChange } from '@virtbus/api-contract';
import { addTestNetns, hasBinaryOrSkip, rejectsWith, removeTestNetns, tearDown, useAgentBus } from '@virtbus/testing';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type Agent } from '../src/agent.js';
import { InterfaceManager } from '../src/interfaces/manager.js';

const HAVE_IP = hasBinaryOrSkip('ip') && hasBinaryOrSkip('nsenter');
const NODE = 'ifaces';
const netns = `vbt-if-${randomBytes(4).toString('hex')}`;
const logger = pino({ level: 'silent' });

function ip(...args: string[]): string {
  return execFileSync('ip', ['-n', netns, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** What `ip -j addr` shows, the form a rollback must give back exactly. */
function ipJson(): unknown {
  return JSON.parse(ip('-j', 'addr', 'show'));
}

/** The same without what a recreated link cannot keep: its index, and the qdisc the kernel attaches on its first `up`. */
function ipJsonOfRecreated(): unknown {
  return (ipJson() as Record<string, unknown>[]).map(({ ifindex: _ifindex, qdisc: _qdisc, ...rest }) => rest);
}

/** The kernel here may lack 802.1Q (CONFIG_VLAN_8021Q): find out in the test namespace. */
function kernelHasVlans(): boolean {
  try {
    ip('link', 'add', 'link', 'vbveth0', 'name', 'vbprobe.9', 'type', 'vlan', 'id', '9');
    ip('link', 'del', 'vbprobe.9');
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!HAVE_IP)('host interfaces in a test network namespace', () => {
  const bus = useAgentBus('virtbus-ifaces-', { jetstream: true });
  let agent: Agent | undefined;
  let vlans = false;

  beforeAll(async () => {
    addTestNetns(netns, { loopbackUp: false });
    // no duplicate address detection: a `tentative` flag that clears on its own would make `ip -j` differ by timing
    for (const conf of ['all', 'default']) execFileSync('ip', ['netns', 'exec', netns, 'sysctl', '-qw', `net.ipv6.conf.${conf}.accept_dad=0`]);
    ip('link', 'set', 'lo', 'up');
    ip('link', 'add', 'vbveth0', 'type', 'veth', 'peer', 'name', 'vbveth1');
    ip('addr', 'add', '192.0.2.1/24', 'dev', 'vbveth0');
    ip('link', 'set', 'vbveth0', 'up');
    ip('link', 'set', 'vbveth1', 'up');
    ip('link', 'add', 'vbkeep', 'type', 'bridge');
    ip('addr', 'add', '198.51.100.1/24', 'dev', 'vbkeep');
    // a link's first `up` turns its qdisc from noop to noqueue for good: do it now so rollbacks can be compared exactly
    ip('link', 'set', 'vbkeep', 'up');
    ip('link', 'set', 'vbkeep', 'down');
    vlans = kernelHasVlans();
    if (!vlans) console.warn('host-interfaces test: this kernel has no 802.1Q support; VLAN creation is checked to fail cleanly instead');
    agent = await startAgent({ node: NODE, nats: { servers: bus.server.url }, stateDir: bus.dir, drivers: ['test'], netns, logger, monitoring: { metricsAddress: 'off' } });
  });

  afterAll(async () => {
    try {
      await tearDown(agent);
    } finally {
      removeTestNetns(netns);
    }
  });

  it('lists lo and the veth made in the namespace, with addresses, stats and bridge membership', async () => {
    const { interfaces, transaction } = await bus.client.call(NODE, 'iface.list', {});
    expect(transaction).toBeUndefined();
    expect(interfaces.map((i) => i.name).sort()).toEqual(['lo', 'vbkeep', 'vbveth0', 'vbveth1']);
    const lo = interfaces.find((i) => i.name === 'lo')!;
    expect(lo).toMatchObject({ kind: 'loopback', adminUp: true });
    expect(lo.addresses.map((a) => `${a.address}/${a.prefix}`)).toContain('127.0.0.1/8');
    const veth = await bus.client.call(NODE, 'iface.get', { name: 'vbveth0' });
    expect(veth).toMatchObject({ kind: 'veth', adminUp: true, mtu: 1500 });
    expect(veth.mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    expect(veth.addresses.some((a) => a.address === '192.0.2.1' && a.prefix === 24)).toBe(true);
    expect(veth.stats?.txPackets).toBeGreaterThanOrEqual(0);
    await rejectsWith(bus.client.call(NODE, 'iface.get', { name: 'nosuch0' }), 'NOT_FOUND');
  });

  it('rolls a transaction back to exactly the `ip -j addr` output of begin', async () => {
    const before = ipJson();
    const begun = await bus.client.call(NODE, 'iface.begin', { timeoutSeconds: 120 });
    await rejectsWith(bus.client.call(NODE, 'iface.begin', {}), 'OPERATION_INVALID');
    const changes: HostInterfaceChange[] = [
      { action: 'create-bridge', name: 'vbbr0', up: true, mtu: 1400 },
      { action: 'set', name: 'vbveth1', master: 'vbbr0' },
      { action: 'add-address', name: 'vbbr0', address: '203.0.113.1/24' },
      { action: 'add-address', name: 'vbveth0', address: '2001:db8::1/64' },
      { action: 'remove-address', name: 'vbveth0', address: '192.0.2.1/24' },
      { action: 'set', name: 'vbveth0', mtu: 1280 },
      { action: 'set', name: 'vbkeep', up: true },
    ];
    await bus.client.call(NODE, 'iface.configure', { changes });
    if (vlans) await bus.client.call(NODE, 'iface.configure', { changes: [{ action: 'create-vlan', name: 'vbveth0.7', parent: 'vbveth0', vlanId: 7, up: true }] });
    else await rejectsWith(bus.client.call(NODE, 'iface.configure', { changes: [{ action: 'create-vlan', name: 'vbveth0.7', parent: 'vbveth0', vlanId: 7 }] }), 'OPERATION_UNSUPPORTED');

    const during = await bus.client.call(NODE, 'iface.transaction', {});
    expect(during.transaction).toMatchObject({ id: begun.id, changes: vlans ? 8 : 7 });
    const bridge = during.interfaces.find((i) => i.name === 'vbbr0')!;
    expect(bridge).toMatchObject({ kind: 'bridge', mtu: 1400, members: ['vbveth1'] });
    expect(during.interfaces.find((i) => i.name === 'vbveth0')!.mtu).toBe(1280);
    expect(existsSync(join(bus.dir, 'interfaces', 'transaction.json'))).toBe(true);

    const rolledBack = await bus.client.call(NODE, 'iface.rollback', {});
    expect(rolledBack.id).toBe(begun.id);
    expect(ipJson()).toEqual(before);
    expect(existsSync(join(bus.dir, 'interfaces', 'transaction.json'))).toBe(false);
    await rejectsWith(bus.client.call(NODE, 'iface.rollback', {}), 'OPERATION_INVALID');
  });

  it('recreates a deleted bridge on rollback, and commit keeps changes', async () => {
    const before = ipJsonOfRecreated();
    await bus.client.call(NODE, 'iface.begin', {});
    await bus.client.call(NODE, 'iface.configure', { changes: [{ action: 'delete', name: 'vbkeep' }] });
    expect(ip('-j', 'link', 'show')).not.toContain('vbkeep');
    await bus.client.call(NODE, 'iface.rollback', {});
    expect(ipJsonOfRecreated()).toEqual(before);

    await bus.client.call(NODE, 'iface.begin', {});
    await bus.client.call(NODE, 'iface.configure', { changes: [{ action: 'create-bridge', name: 'vbbr1' }, { action: 'set', name: 'vbveth1', master: 'vbbr1' }] });
    await bus.client.call(NODE, 'iface.commit', {});
    const kept = (await bus.client.call(NODE, 'iface.list', {})).interfaces;
    expect(kept.find((i) => i.name === 'vbveth1')?.master).toBe('vbbr1');
    await rejectsWith(bus.client.call(NODE, 'iface.commit', {}), 'OPERATION_INVALID');
  });

  it('undoes a failed batch and refuses bad input without changing anything', async () => {
    const before = ipJson();
    await rejectsWith(
      bus.client.call(NODE, 'iface.configure', {
        changes: [
          { action: 'create-bridge', name: 'vbbr2' },
          { action: 'add-address', name: 'vbbr2', address: '10.1.2.3/24' },
          { action: 'add-address', name: 'vbbr2', address: '10.1.2.300/24' },
        ],
      }),
      'INVALID_ARG',
    );
    await rejectsWith(bus.client.call(NODE, 'iface.configure', { changes: [{ action: 'delete', name: 'vbveth0' }] }), 'OPERATION_INVALID');
    await rejectsWith(bus.client.call(NODE, 'iface.configure', { changes: [{ action: 'set', name: 'vbveth0', mtu: 20 }] }), 'INVALID_ARG');
    expect(ipJson()).toEqual(before);
  });

  it('rolls back a transaction left open by an agent that went away, and one that timed out', async () => {
    const before = ipJson();
    await bus.client.call(NODE, 'iface.begin', {});
    await bus.client.call(NODE, 'iface.configure', { changes: [{ action: 'create-bridge', name: 'vbbr3', up: true }, { action: 'set', name: 'vbveth0', mtu: 1300 }] });
    await agent!.close();
    agent = undefined;
    expect(ip('-j', 'link', 'show')).toContain('vbbr3');
    agent = await startAgent({ node: NODE, nats: { servers: bus.server.url }, stateDir: bus.dir, drivers: ['test'], netns, logger, monitoring: { metricsAddress: 'off' } });
    expect(ipJson()).toEqual(before);
    expect((await bus.client.call(NODE, 'iface.list', {})).transaction).toBeUndefined();

    const manager = new InterfaceManager({ stateDir: join(bus.dir, 'timeout'), netns, configurable: true, logger });
    await manager.begin(1);
    await manager.configure([{ action: 'create-bridge', name: 'vbbr4' }]);
    const deadline = Date.now() + 10_000;
    while (ip('-j', 'link', 'show').includes('vbbr4') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(ipJson()).toEqual(before);
    manager.close();
  });

  it("refuses configuration where it was not switched on (the agent's own namespace by default)", async () => {
    const manager = new InterfaceManager({ stateDir: join(bus.dir, 'off'), netns, configurable: false, logger });
    await rejectsWith(manager.begin(), 'OPERATION_INVALID');
    await rejectsWith(manager.configure([{ action: 'create-bridge', name: 'vbbr5' }]), 'OPERATION_INVALID');
    expect((await manager.list()).interfaces.length).toBeGreaterThan(0);
  });
});

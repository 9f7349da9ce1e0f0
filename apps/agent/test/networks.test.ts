import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { VirtError, type DhcpLease, type Domain, type Network, type NetworkEvent, type NetworksPost } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { addTestNetns, ensureTestGuest, GUEST_FLAGS, GUEST_MARKERS, hasBinaryOrSkip, processesMentioning, removeTestNetns, spawnAgent, startNatsServer, type AgentProcess, type NatsServerHandle, waitFor as waitUntil } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const TOOLS = hasBinaryOrSkip('qemu-system-x86_64') && hasBinaryOrSkip('dnsmasq') && hasBinaryOrSkip('nft') && hasBinaryOrSkip('nsenter');
const NODE = 'netnode';
const NETNS = `vbtest-net-${process.pid}`;
const NET: NetworksPost = {
  name: 'lan',
  mode: 'nat',
  ipv4: { address: '10.77.0.1/24', dhcp: { ranges: [{ start: '10.77.0.100', end: '10.77.0.150' }] } },
  ipv6: { address: 'fd77::1/64' },
  dnsHosts: [{ ip: '10.77.0.2', hostnames: ['db'] }],
};
const FIXED_IP = '10.77.0.5';

let nats: NatsServerHandle;
let nc: NatsConnection;
let client: VirtClient;
let work: string;
let agent: AgentProcess | undefined;
let uuid = '';
let mac = '';
const netEvents: NetworkEvent[] = [];

const inNs = (...args: string[]) => execFileSync('ip', ['-n', NETNS, ...args], { encoding: 'utf8' });
const links = () => (JSON.parse(inNs('-j', 'link', 'show')) as { ifname: string }[]).map((link) => link.ifname);
const nftTables = () => execFileSync('nsenter', [`--net=/run/netns/${NETNS}`, '--', 'nft', 'list', 'tables'], { encoding: 'utf8' });
const alive = (pid: number) => {
  try {
    const stat = execFileSync('cat', [`/proc/${pid}/stat`], { encoding: 'utf8' });
    return !/\) [ZX] /.test(stat);
  } catch {
    return false;
  }
};
const consoleLog = () => readFile(join(work, 'state', 'drivers', 'qemu', uuid, 'console.log'), 'utf8').catch(() => '');
const guestIps = async () => [...(await consoleLog()).matchAll(new RegExp(`${GUEST_MARKERS.ip} (\\S+)`, 'g'))].map((match) => match[1]!);
/** Waits with the guest console's tail in the failure message (the guest says what went wrong there). */
const waitFor = <T>(what: string, check: () => Promise<T>, timeoutMs = 90_000) =>
  waitUntil(what, check, timeoutMs, async () => `console:\n${(await consoleLog()).slice(-2000)}`);

async function type(text: string): Promise<void> {
  const { session } = await client.call(NODE, 'domain.console.attach', { id: uuid, force: true });
  await client.call(NODE, 'domain.console.write', { id: uuid, session, data: Buffer.from(text).toString('base64') });
  await client.call(NODE, 'domain.console.detach', { id: uuid, session });
}

async function startAgent(): Promise<void> {
  agent = await spawnAgent({ node: NODE, natsUrl: nats.url, stateDir: join(work, 'state'), drivers: 'qemu', extraArgs: ['--netns', NETNS] });
}

const leases = async () => ((await client.call(NODE, 'network.leases', { network: 'lan' })) as { leases: DhcpLease[] }).leases;

describe.skipIf(!TOOLS)('virtual networks in a network namespace (real bridge, dnsmasq, nftables, TCG guest)', () => {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'virtbus-net-'));
    addTestNetns(NETNS);
    const guest = await ensureTestGuest();
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    client = new VirtClient(nc);
    nc.subscribe(`virt.v1.${NODE}.events.network.>`, {
      callback: (_error, msg) => {
        netEvents.push(JSON.parse(new TextDecoder().decode(msg.data)) as NetworkEvent);
      },
    });
    await startAgent();
    // an empty rule set: the NIC is bound from the start, its rules change later while the guest runs
    await client.call(NODE, 'firewall.ruleset.define', { name: 'guest-fw', rules: [] });
    const domain = (await client.call(NODE, 'domain.define', {
      name: 'netguest',
      driver: 'qemu',
      memory: 256,
      os: { kernel: guest.kernel, initrd: guest.initrd, cmdline: `${guest.cmdline} ${GUEST_FLAGS.dhcp}` },
      nics: [{ type: 'network', source: 'lan', filter: 'guest-fw' }],
    })) as Domain;
    uuid = domain.uuid;
    mac = domain.config.nics[0]!.mac!;
  }, 180_000);

  afterAll(async () => {
    await client?.call(NODE, 'domain.state', { id: uuid, change: { action: 'destroy' } }).catch(() => undefined);
    await agent?.stop();
    // anything still running in our namespace (dnsmasq, QEMU) was started by this test
    const stillRunning = removeTestNetns(NETNS);
    await nc?.close();
    await nats?.stop();
    const leftovers = work ? processesMentioning(work) : [];
    if (work) await rm(work, { recursive: true, force: true });
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(NETNS);
    expect(stillRunning).toEqual([]);
    expect(leftovers).toEqual([]);
  });

  it('rejects bad definitions with INVALID_ARG and creates nothing', async () => {
    const bad: NetworksPost[] = [
      { ...NET, name: 'overlap', ipv4: { address: '10.78.0.1/24', dhcp: { ranges: [{ start: '10.78.0.10', end: '10.78.0.50' }, { start: '10.78.0.40', end: '10.78.0.60' }] } } },
      { ...NET, name: 'badcidr', ipv4: { address: '10.78.0.1/33' } },
      { ...NET, name: 'outside', ipv4: { address: '10.78.0.1/24', dhcp: { ranges: [{ start: '10.79.0.10', end: '10.79.0.20' }] } } },
      { ...NET, name: 'longbridge', bridge: 'a-bridge-name-too-long' },
    ];
    for (const post of bad) {
      const failure = await client.call(NODE, 'network.define', post).catch((error: unknown) => error);
      expect(VirtError.is(failure, 'INVALID_ARG'), `${post.name}: ${String(failure)}`).toBe(true);
    }
    expect(((await client.call(NODE, 'network.list', {})) as { networks: Network[] }).networks).toEqual([]);
    expect(links()).toEqual(['lo']);
    expect(nftTables()).toBe('');
  });

  it('starts a NAT network: bridge with its addresses, dnsmasq, and its own nft table', async () => {
    const defined = (await client.call(NODE, 'network.define', NET)) as Network;
    expect(defined).toMatchObject({ name: 'lan', state: 'inactive', bridge: 'vb-lan', mode: 'nat' });
    const started = (await client.call(NODE, 'network.state', { network: 'lan', change: { action: 'start' } })) as Network;
    expect(started.state).toBe('active');
    expect(alive(started.dnsmasqPid!)).toBe(true);
    expect(inNs('-br', 'address', 'show', 'dev', 'vb-lan')).toMatch(/10\.77\.0\.1\/24.*fd77::1\/64/);
    expect(nftTables()).toContain('table inet virtbus-vb-lan');
    await waitFor('STARTED event', async () => netEvents.some((event) => event.type === 'STARTED' && event.name === 'lan'), 10_000);
    expect(netEvents.map((event) => event.type)).toEqual(['DEFINED', 'STARTED']);
  });

  it('boots the guest on the network: DHCP lease on the console and in the leases API, ping to the gateway', async () => {
    await client.call(NODE, 'domain.state', { id: uuid, change: { action: 'start' } });
    const [ip] = await waitFor('GUEST-IP on the console', async () => ((await guestIps()).length > 0 ? guestIps() : undefined));
    expect(ip).toMatch(/^10\.77\.0\.(1[0-4][0-9]|150)$/);
    const lease = (await leases()).find((entry) => entry.mac === mac);
    expect(lease).toMatchObject({ network: 'lan', type: 'ipv4', ip, prefix: 24 });
    const addresses = (await client.call(NODE, 'domain.interfaces', { id: uuid })) as { interfaces: { mac: string; addresses: { address: string }[] }[] };
    expect(addresses.interfaces[0]).toMatchObject({ mac, addresses: [{ address: ip }] });

    await waitFor('GUEST-READY', async () => (await consoleLog()).includes(GUEST_MARKERS.ready));
    // the shell echoes what we type: the marker only appears expanded when ping succeeded
    await type('ping -c 2 -W 3 10.77.0.1 >/dev/null && echo PING-$((40+2))-OK\n');
    await waitFor('ping to the gateway', async () => (await consoleLog()).includes('PING-42-OK'), 30_000);

    const stats = (await client.call(NODE, 'domain.stats', { id: uuid })) as { net?: { name: string; rxPackets: number; txPackets: number }[] };
    expect(stats.net?.[0]?.name).toMatch(/^vb[0-9a-f]{8}n0$/);
    expect(stats.net?.[0]?.rxPackets).toBeGreaterThan(0);
    expect(inNs('-j', 'link', 'show', 'master', 'vb-lan')).toContain(stats.net?.[0]?.name);
  });

  it('a firewall rule set on the NIC blocks the ping to the gateway; emptying it restores the ping', async () => {
    const tap = `vb${uuid.replace(/-/g, '').slice(0, 8)}n0`;
    const bound = await client.call(NODE, 'firewall.ruleset.get', { name: 'guest-fw' });
    expect(bound.bindings).toEqual([{ domain: uuid, device: tap, mac, ips: [] }]);
    expect(nftTables()).toContain('table bridge virtbus-fw');
    await client.call(NODE, 'firewall.ruleset.update', { name: 'guest-fw', ruleSet: { rules: [{ action: 'drop', direction: 'out', protocol: 'icmp' }] } });
    await type('ping -c 1 -W 2 10.77.0.1 >/dev/null || echo FW-$((20+1))-BLOCKED\n');
    await waitFor('the rule set to block the ping', async () => (await consoleLog()).includes('FW-21-BLOCKED'), 30_000);
    await client.call(NODE, 'firewall.ruleset.update', { name: 'guest-fw', ruleSet: { rules: [] } });
    await type('ping -c 2 -W 3 10.77.0.1 >/dev/null && echo FW-$((20+2))-OPEN\n');
    await waitFor('the ping to work again', async () => (await consoleLog()).includes('FW-22-OPEN'), 30_000);
  });

  it('a static host entry, added live without restarting dnsmasq, gives the guest a fixed address', async () => {
    const before = (await client.call(NODE, 'network.get', { network: 'lan' })) as Network;
    const updated = (await client.call(NODE, 'network.update', { network: 'lan', config: { ipv4Hosts: [{ mac, ip: FIXED_IP, name: 'fixed' }] } })) as Network;
    expect(updated.dnsmasqPid).toBe(before.dnsmasqPid);
    await type('udhcpc -i eth0 -n -q -t 5 -T 1 -s /etc/udhcpc/default.script >/dev/null 2>&1\n');
    await waitFor('the fixed address on the console', async () => (await guestIps()).includes(FIXED_IP), 30_000);
    await waitFor('the fixed address in the leases', async () => (await leases()).some((entry) => entry.mac === mac && entry.ip === FIXED_IP), 10_000);
  });

  it('link down cuts the guest off, link up restores it; a hotplugged NIC appears in the guest and unplugs cleanly', async () => {
    await client.call(NODE, 'domain.nic.link', { id: uuid, mac, link: 'down' });
    await type('ping -c 1 -W 2 10.77.0.1 >/dev/null || echo LINK-$((10+7))-DOWN\n');
    await waitFor('ping to fail with the link down', async () => (await consoleLog()).includes('LINK-17-DOWN'), 30_000);
    await client.call(NODE, 'domain.nic.link', { id: uuid, mac, link: 'up' });
    await type('ping -c 2 -W 3 10.77.0.1 >/dev/null && echo LINK-$((10+8))-UP\n');
    await waitFor('ping to work again', async () => (await consoleLog()).includes('LINK-18-UP'), 30_000);

    const attached = (await client.call(NODE, 'domain.nic.attach', { id: uuid, nic: { type: 'network', source: 'lan', filter: 'guest-fw' } })) as Domain;
    expect(attached.config.nics).toHaveLength(2);
    const second = attached.config.nics[1]!.mac!;
    const hotTap = `vb${uuid.replace(/-/g, '').slice(0, 6)}h${second.replace(/:/g, '').slice(6)}`;
    expect(inNs('-j', 'link', 'show', 'master', 'vb-lan')).toContain(hotTap);
    // the hotplugged NIC is bound to its rule set at once
    expect((await client.call(NODE, 'firewall.ruleset.get', { name: 'guest-fw' })).bindings.map((b) => b.device).sort()).toEqual([`vb${uuid.replace(/-/g, '').slice(0, 8)}n0`, hotTap].sort());
    // ACPI hotplug under TCG takes a moment: poll for eth1 in the guest
    await type('for i in $(seq 60); do [ -e /sys/class/net/eth1 ] && break; sleep 0.5; done; tr a-f A-F </sys/class/net/eth1/address | sed s/^/HOTPLUG-/\n');
    await waitFor('eth1 in the guest', async () => (await consoleLog()).includes(`HOTPLUG-${second.toUpperCase()}`), 30_000);
    const detached = (await client.call(NODE, 'domain.nic.detach', { id: uuid, mac: second })) as Domain;
    expect(detached.config.nics).toHaveLength(1);
    await waitFor('the hotplugged tap to go', async () => !links().includes(hotTap), 10_000);
    expect((await client.call(NODE, 'firewall.ruleset.get', { name: 'guest-fw' })).bindings.map((b) => b.device)).not.toContain(hotTap);
    expect(nftTables()).toContain('virtbus-fw');
  });

  it('a restarted agent re-adopts the running network and its dnsmasq, and starts an autostart network', async () => {
    const before = (await client.call(NODE, 'network.get', { network: 'lan' })) as Network;
    await client.call(NODE, 'network.define', { name: 'auto', mode: 'isolated', ipv4: { address: '10.79.0.1/24', dhcp: { ranges: [{ start: '10.79.0.10', end: '10.79.0.20' }] } } });
    expect(((await client.call(NODE, 'network.update', { network: 'auto', config: { autostart: true } })) as Network)).toMatchObject({ autostart: true, state: 'inactive' });
    await agent?.stop();
    await startAgent();
    const after = (await client.call(NODE, 'network.get', { network: 'lan' })) as Network;
    expect(after).toMatchObject({ state: 'active', dnsmasqPid: before.dnsmasqPid });
    expect(((await client.call(NODE, 'domain.get', { id: uuid })) as Domain).state).toBe('running');
    const auto = (await client.call(NODE, 'network.get', { network: 'auto' })) as Network;
    expect(auto).toMatchObject({ state: 'active', autostart: true });
    expect(alive(auto.dnsmasqPid!)).toBe(true);
    expect(inNs('-br', 'address', 'show', 'dev', auto.bridge)).toContain('10.79.0.1/24');
    await client.call(NODE, 'network.state', { network: 'auto', change: { action: 'stop' } });
    expect(alive(auto.dnsmasqPid!)).toBe(false);
    await client.call(NODE, 'network.undefine', { network: 'auto' });
  });

  it('stopping the domain removes its tap; stopping the network removes bridge, dnsmasq and nft table', async () => {
    const tap = `vb${uuid.replace(/-/g, '').slice(0, 8)}n0`;
    await client.call(NODE, 'domain.state', { id: uuid, change: { action: 'destroy' } });
    // read right after the destroy's answer: the binding its STOPPED event removes is gone, chains with it
    expect((await client.call(NODE, 'firewall.ruleset.get', { name: 'guest-fw' })).bindings).toEqual([]);
    expect(nftTables()).not.toContain('virtbus-fw');
    await waitFor('the tap to go', async () => !links().includes(tap), 10_000);
    const { dnsmasqPid } = (await client.call(NODE, 'network.get', { network: 'lan' })) as Network;
    const stopped = (await client.call(NODE, 'network.state', { network: 'lan', change: { action: 'stop' } })) as Network;
    expect(stopped.state).toBe('inactive');
    expect(links()).toEqual(['lo']);
    expect(nftTables()).toBe('');
    // the stop returned once its dnsmasq was gone
    expect(alive(dnsmasqPid!)).toBe(false);
    await client.call(NODE, 'network.undefine', { network: 'lan' });
    await waitFor('UNDEFINED event', async () => netEvents.some((event) => event.type === 'UNDEFINED' && event.name === 'lan'), 10_000);
    expect(netEvents.filter((event) => event.name === 'lan').map((event) => event.type)).toEqual(['DEFINED', 'STARTED', 'STOPPED', 'UNDEFINED']);
    expect(netEvents.filter((event) => event.name === 'auto').map((event) => event.type)).toEqual(['DEFINED', 'STARTED', 'STOPPED', 'UNDEFINED']);
  });
});

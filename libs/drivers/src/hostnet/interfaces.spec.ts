import { describe, expect, it } from 'vitest';
import { parseAddressCidr, parseIpAddr, snapshotOf } from './interfaces.js';

const SAMPLE = JSON.stringify([
  { ifindex: 1, ifname: 'lo', flags: ['LOOPBACK', 'UP', 'LOWER_UP'], mtu: 65536, operstate: 'UNKNOWN', link_type: 'loopback', address: '00:00:00:00:00:00', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8, scope: 'host' }] },
  { ifindex: 2, ifname: 'br0', flags: ['BROADCAST', 'UP'], mtu: 1400, operstate: 'UP', link_type: 'ether', address: '52:54:00:00:00:01', linkinfo: { info_kind: 'bridge' }, addr_info: [{ family: 'inet', local: '10.0.0.1', prefixlen: 24, broadcast: '10.0.0.255', scope: 'global' }, { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' }] },
  { ifindex: 3, ifname: 'vnet0', flags: ['BROADCAST'], mtu: 1500, operstate: 'DOWN', link_type: 'ether', master: 'br0', linkinfo: { info_kind: 'tun' }, stats64: { rx: { bytes: 10, packets: 1 }, tx: { bytes: 20, packets: 2, errors: 0, dropped: 0 } } },
  { ifindex: 4, ifname: 'eth0.7', link: 'eth0', flags: [], mtu: 1500, link_type: 'ether', linkinfo: { info_kind: 'vlan', info_data: { protocol: '802.1Q', id: 7 } } },
  { ifindex: 5, ifname: 'eth0', flags: ['UP'], mtu: 1500, link_type: 'ether' },
]);

describe('parseIpAddr', () => {
  it('reads kind, state, addresses, stats, bridge membership and VLANs from `ip -j -s -d addr`', () => {
    const byName = new Map(parseIpAddr(SAMPLE).map((i) => [i.name, i]));
    expect(byName.get('lo')).toMatchObject({ kind: 'loopback', adminUp: true, mtu: 65536 });
    expect(byName.get('br0')).toMatchObject({ kind: 'bridge', members: ['vnet0'], mtu: 1400 });
    expect(byName.get('br0')!.addresses[0]).toEqual({ family: 'inet', address: '10.0.0.1', prefix: 24, scope: 'global', broadcast: '10.0.0.255' });
    expect(byName.get('vnet0')).toMatchObject({ kind: 'tun', adminUp: false, master: 'br0', stats: { rxBytes: 10, rxPackets: 1, txBytes: 20, txPackets: 2 } });
    expect(byName.get('eth0.7')).toMatchObject({ kind: 'vlan', vlan: { id: 7, parent: 'eth0' } });
    expect(byName.get('eth0')!.kind).toBe('ethernet');
  });

  it('leaves kernel-made IPv6 link-local addresses out of a snapshot', () => {
    const br0 = snapshotOf(parseIpAddr(SAMPLE)).find((s) => s.name === 'br0')!;
    expect(br0.addresses).toEqual([{ address: '10.0.0.1', prefix: 24, broadcast: '10.0.0.255' }]);
  });
});

describe('parseAddressCidr', () => {
  it('accepts IPv4 and IPv6 with prefixes that fit', () => {
    expect(parseAddressCidr('192.0.2.1/24')).toEqual({ address: '192.0.2.1', prefix: 24, family: 4 });
    expect(parseAddressCidr('2001:db8::1/64')).toEqual({ address: '2001:db8::1', prefix: 64, family: 6 });
  });

  it('refuses malformed addresses and prefixes', () => {
    for (const bad of ['192.0.2.1', '192.0.2.1/33', '10.1.2.300/24', '2001:db8::1/129', 'x/1', '/24']) expect(() => parseAddressCidr(bad), bad).toThrow(/invalid address/);
  });
});

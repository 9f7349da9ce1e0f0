import { describe, expect, it } from 'vitest';
import type { NetworkDefinition } from './definition.js';
import { dhcpHostsFile, dnsmasqConfig, dnsmasqPaths, parseLeases } from './dnsmasq.js';
import { nftRuleset } from './nft.js';

const net: NetworkDefinition = {
  name: 'n1',
  uuid: '11111111-1111-4111-8111-111111111111',
  mode: 'nat',
  bridge: 'vb-n1',
  ipv4: { address: '192.168.150.1/24', dhcp: { ranges: [{ start: '192.168.150.10', end: '192.168.150.50' }], hosts: [{ mac: '52:54:00:aa:bb:cc', ip: '192.168.150.5', name: 'fixed' }] } },
  ipv6: { address: 'fd00:150::1/64', dhcp: { ranges: [{ start: 'fd00:150::10', end: 'fd00:150::ff' }], hosts: [{ mac: '52:54:00:aa:bb:cc', ip: 'fd00:150::5' }] } },
  dnsHosts: [],
};

describe('dnsmasq', () => {
  it('binds only to the bridge and keeps every file in its own directory', () => {
    const conf = dnsmasqConfig(net, dnsmasqPaths('/state/n1'));
    expect(conf).toContain('interface=vb-n1\nbind-interfaces\nexcept-interface=lo');
    expect(conf).toContain('no-ping');
    expect(conf).toContain('dhcp-range=192.168.150.10,192.168.150.50,255.255.255.0,1h');
    expect(conf).toContain('dhcp-range=fd00:150::10,fd00:150::ff,64,1h');
    expect(conf).toContain('dhcp-leasefile=/state/n1/dnsmasq.leases');
    expect(conf).toContain('pid-file=/state/n1/dnsmasq.pid');
  });

  it('writes static hosts for --dhcp-hostsfile', () => {
    expect(dhcpHostsFile(net)).toBe('52:54:00:aa:bb:cc,192.168.150.5,fixed\n52:54:00:aa:bb:cc,[fd00:150::5]\n');
  });

  it('parses IPv4 and IPv6 leases', () => {
    const text = '1795390000 52:54:00:aa:bb:cc 192.168.150.23 guest 01:52:54:00:aa:bb:cc\nduid 00:01:00:01\n1795390000 1234 fd00:150::23 * 00:04:aa\n';
    expect(parseLeases(text, net)).toEqual([
      { network: 'n1', type: 'ipv4', ip: '192.168.150.23', prefix: 24, mac: '52:54:00:aa:bb:cc', hostname: 'guest', clientId: '01:52:54:00:aa:bb:cc', expiresAt: new Date(1795390000_000).toISOString() },
      { network: 'n1', type: 'ipv6', ip: 'fd00:150::23', prefix: 64, clientId: '00:04:aa', expiresAt: new Date(1795390000_000).toISOString() },
    ]);
  });
});

describe('nftRuleset', () => {
  it('masquerades the IPv4 subnet and keeps closing braces on their own lines', () => {
    const rules = nftRuleset(net);
    expect(rules).toContain('table inet virtbus-vb-n1 {');
    expect(rules).toContain('ip saddr 192.168.150.0/24 ip daddr != 192.168.150.0/24 oifname != "vb-n1" masquerade');
    for (const line of rules.split('\n')) if (line.includes('}')) expect(line.trim()).toBe('}');
  });

  it('isolated networks only forward between their own ports', () => {
    const rules = nftRuleset({ ...net, mode: 'isolated' });
    expect(rules).not.toContain('masquerade');
    expect(rules).toContain('iifname "vb-n1" reject');
  });
});

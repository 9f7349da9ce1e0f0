import { describe, expect, it } from 'vitest';
import { defaultBridgeName, validateDefinition, type NetworkDefinition } from './definition.js';

const base: NetworkDefinition = {
  name: 'net1',
  uuid: '11111111-1111-4111-8111-111111111111',
  mode: 'nat',
  bridge: 'vb-net1',
  ipv4: { address: '192.168.100.1/24', dhcp: { ranges: [{ start: '192.168.100.10', end: '192.168.100.99' }], hosts: [{ mac: '52:54:00:00:00:01', ip: '192.168.100.5' }] } },
  ipv6: { address: 'fd00:100::1/64', dhcp: { ranges: [{ start: 'fd00:100::10', end: 'fd00:100::ff' }] } },
  dnsHosts: [{ ip: '192.168.100.2', hostnames: ['db'] }],
};
const invalid = expect.objectContaining({ code: 'INVALID_ARG' });

describe('validateDefinition', () => {
  it('accepts a NAT network with IPv4, IPv6, static hosts and DNS', () => {
    expect(() => validateDefinition(base, [])).not.toThrow();
  });

  it('rejects bridge names longer than 15 characters', () => {
    expect(() => validateDefinition({ ...base, bridge: 'a-very-long-bridge' }, [])).toThrow(invalid);
  });

  it('rejects overlapping ranges, ranges outside the subnet and invalid CIDRs', () => {
    const ranges = (list: { start: string; end: string }[]) => ({ ...base, ipv4: { address: '192.168.100.1/24', dhcp: { ranges: list } } });
    expect(() => validateDefinition(ranges([{ start: '192.168.100.10', end: '192.168.100.50' }, { start: '192.168.100.40', end: '192.168.100.60' }]), [])).toThrow(/overlap/);
    expect(() => validateDefinition(ranges([{ start: '192.168.100.10', end: '192.168.101.5' }]), [])).toThrow(/outside/);
    expect(() => validateDefinition(ranges([{ start: '192.168.100.50', end: '192.168.100.10' }]), [])).toThrow(/before/);
    expect(() => validateDefinition(ranges([{ start: '192.168.100.1', end: '192.168.100.10' }]), [])).toThrow(/gateway/);
    expect(() => validateDefinition({ ...base, ipv4: { address: '192.168.100.1/40' } }, [])).toThrow(invalid);
    expect(() => validateDefinition({ ...base, ipv4: { address: '192.168.300.1/24' } }, [])).toThrow(invalid);
  });

  it('rejects static hosts outside the subnet', () => {
    expect(() => validateDefinition({ ...base, ipv4: { address: '192.168.100.1/24', dhcp: { ranges: [], hosts: [{ mac: '52:54:00:00:00:01', ip: '10.0.0.5' }] } } }, [])).toThrow(invalid);
  });

  it('rejects a subnet or bridge another network uses', () => {
    const other = { ...base, name: 'other', uuid: '22222222-2222-4222-8222-222222222222', bridge: 'vb-other', ipv6: undefined, ipv4: { address: '192.168.100.129/25' } };
    expect(() => validateDefinition(base, [other])).toThrow(/overlaps network other/);
    expect(() => validateDefinition(base, [{ ...other, ipv4: { address: '10.1.0.1/24' }, bridge: 'vb-net1' }])).toThrow(/already used/);
  });

  it('gives every network a bridge name that fits', () => {
    expect(defaultBridgeName('default')).toBe('vb-default');
    expect(defaultBridgeName('a-rather-long-network-name').length).toBeLessThanOrEqual(15);
  });
});

import { describe, expect, it } from 'vitest';
import { applyScript, filteredDevices, parseTableState, removeScript, renderNicChains, renderRule } from './nft.js';

const noReject = { reject: false };

describe('firewall nft renderer', () => {
  it('renders protocol, ports, addresses and verdicts, one line per IP family', () => {
    expect(renderRule({ action: 'drop', direction: 'inout', protocol: 'icmp' }, 'in', noReject)).toEqual(['ether type ip meta l4proto icmp counter drop']);
    expect(renderRule({ action: 'allow', direction: 'in', protocol: 'tcp', destinationPorts: ['22', '1000-2000'] }, 'in', noReject)).toEqual([
      'meta l4proto tcp tcp dport { 22, 1000-2000 } counter accept',
    ]);
    expect(renderRule({ action: 'deny', direction: 'out', protocol: 'udp', sourcePorts: ['53'], destination: ['10.0.0.0/8', '2001:db8::/32'], comment: 'x y' }, 'out', noReject)).toEqual([
      'ip daddr 10.0.0.0/8 meta l4proto udp udp sport 53 counter drop comment "x y"',
      'ip6 daddr 2001:db8::/32 meta l4proto udp udp sport 53 counter drop comment "x y"',
    ]);
    expect(renderRule({ action: 'deny', direction: 'out' }, 'out', { reject: true })).toEqual(['counter reject']);
    // reject exists only before routing in bridge chains: traffic to the domain is dropped instead
    expect(renderRule({ action: 'deny', direction: 'in' }, 'in', { reject: true })).toEqual(['counter drop']);
  });

  it('orders by priority, keeps ties in order, puts anti-spoofing first and splits directions', () => {
    const chains = renderNicChains(
      {
        device: 'vnet0',
        mac: '52:54:00:AA:bb:cc',
        ips: ['192.0.2.5'],
        ruleSet: {
          antiSpoofing: { mac: true, ip: true },
          rules: [
            { action: 'drop', direction: 'out', comment: 'last' },
            { action: 'allow', direction: 'inout', protocol: 'icmp', priority: -10 },
            { action: 'allow', direction: 'in', protocol: 'tcp', destinationPorts: ['80'] },
          ],
        },
      },
      noReject,
    );
    expect(chains.out).toEqual([
      'ether saddr != 52:54:00:aa:bb:cc counter drop',
      'arp saddr ether != 52:54:00:aa:bb:cc counter drop',
      'ip saddr != { 192.0.2.5, 0.0.0.0 } counter drop',
      'arp saddr ip != { 192.0.2.5, 0.0.0.0 } counter drop',
      'ether type ip meta l4proto icmp counter accept',
      'counter drop comment "last"',
    ]);
    expect(chains.in).toEqual(['ether type ip meta l4proto icmp counter accept', 'meta l4proto tcp tcp dport 80 counter accept']);
  });

  it('refuses invalid CIDRs, reversed port ranges, ports without tcp/udp and impossible families', () => {
    const spec = (rule: object) => ({ device: 'vnet0', mac: '52:54:00:00:00:01', ips: [], ruleSet: { rules: [rule as never] } });
    expect(() => renderNicChains(spec({ action: 'drop', direction: 'in', source: ['10.0.0.0/33'] }), noReject)).toThrow(/invalid CIDR/);
    expect(() => renderNicChains(spec({ action: 'drop', direction: 'in', source: ['300.1.1.1'] }), noReject)).toThrow(/invalid CIDR/);
    expect(() => renderNicChains(spec({ action: 'drop', direction: 'in', protocol: 'tcp', destinationPorts: ['90-80'] }), noReject)).toThrow(/reversed/);
    expect(() => renderNicChains(spec({ action: 'drop', direction: 'in', protocol: 'tcp', destinationPorts: ['70000'] }), noReject)).toThrow(/invalid port/);
    expect(() => renderNicChains(spec({ action: 'drop', direction: 'in', protocol: 'icmp', destinationPorts: ['80'] }), noReject)).toThrow(/tcp or udp/);
    expect(() => renderNicChains(spec({ action: 'drop', direction: 'in', protocol: 'icmp', source: ['2001:db8::/32'] }), noReject)).toThrow(/common IP family/);
    expect(() => renderNicChains({ ...spec({ action: 'drop', direction: 'in' }), device: 'bad name' }, noReject)).toThrow(/invalid device/);
  });

  it('writes one transaction whose braces stand on their own lines (nft 1.0.6)', () => {
    const script = applyScript({ device: 'vnet0', mac: '52:54:00:00:00:01', ips: [], ruleSet: { rules: [{ action: 'drop', direction: 'in', protocol: 'icmp' }] } }, noReject);
    expect(script).toContain('table bridge virtbus-fw {');
    expect(script).toContain('add element bridge virtbus-fw out-nics { "vnet0" : jump nic-vnet0-out }');
    expect(script).toContain('add rule bridge virtbus-fw nic-vnet0-in ether type ip meta l4proto icmp counter drop');
    for (const line of script.split('\n')) if (/\S.*}\s*$/.test(line) && !line.startsWith('add element')) expect(line.trim()).toBe('}');
    expect(script).not.toMatch(/flush (ruleset|table)/);
  });

  it('removes only its own chains, and the whole table with the last NIC', () => {
    const state = parseTableState(
      JSON.stringify({
        nftables: [
          { chain: { name: 'prerouting' } },
          { chain: { name: 'nic-vnet0-out' } },
          { chain: { name: 'nic-vnet0-in' } },
          { chain: { name: 'nic-vnet1-out' } },
          { chain: { name: 'nic-vnet1-in' } },
          { map: { name: 'out-nics', elem: [['vnet0', { jump: { target: 'nic-vnet0-out' } }], ['vnet1', { jump: { target: 'nic-vnet1-out' } }]] } },
        ],
      }),
    );
    expect(filteredDevices(state)).toEqual(['vnet0', 'vnet1']);
    expect(removeScript('vnet0', state).split('\n').filter(Boolean)).toEqual([
      'delete element bridge virtbus-fw out-nics { "vnet0" }',
      'flush chain bridge virtbus-fw nic-vnet0-out',
      'delete chain bridge virtbus-fw nic-vnet0-out',
      'flush chain bridge virtbus-fw nic-vnet0-in',
      'delete chain bridge virtbus-fw nic-vnet0-in',
    ]);
    const onlyOne = parseTableState(JSON.stringify({ nftables: [{ chain: { name: 'nic-vnet0-out' } }, { chain: { name: 'nic-vnet0-in' } }] }));
    expect(removeScript('vnet0', onlyOne)).toBe('delete table bridge virtbus-fw\n');
  });
});

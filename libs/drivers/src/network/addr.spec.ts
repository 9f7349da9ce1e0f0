import { describe, expect, it } from 'vitest';
import { contains, formatIp, netmask, parseCidr, parseIp, subnetText } from './addr.js';

describe('addresses', () => {
  it('parses and formats IPv4 and IPv6', () => {
    expect(formatIp(parseIp('192.168.100.1'))).toBe('192.168.100.1');
    expect(formatIp(parseIp('fd00:100::1'))).toBe('fd00:100::1');
    expect(parseIp('::ffff:1.2.3.4').value).toBe(parseIp('::ffff:102:304').value);
    expect(() => parseIp('300.1.1.1')).toThrow(/invalid IP/);
  });

  it('derives the subnet of a gateway CIDR', () => {
    const cidr = parseCidr('192.168.100.1/24');
    expect(subnetText(cidr)).toBe('192.168.100.0/24');
    expect(contains(cidr, parseIp('192.168.100.254'))).toBe(true);
    expect(contains(cidr, parseIp('192.168.101.1'))).toBe(false);
    expect(subnetText(parseCidr('fd00:100::1/64'))).toBe('fd00:100::/64');
    expect(netmask(24)).toBe('255.255.255.0');
  });

  it('rejects malformed CIDRs with INVALID_ARG', () => {
    for (const bad of ['192.168.100.1', '192.168.100.1/33', '192.168.100.0/24', '192.168.100.255/24', 'x/24', '10.0.0.1/31']) {
      expect(() => parseCidr(bad), bad).toThrow(expect.objectContaining({ code: 'INVALID_ARG' }));
    }
  });
});

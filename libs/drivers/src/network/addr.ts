import { isIPv4, isIPv6 } from 'node:net';
import { VirtError } from '@virtbus/api-contract';

export type IpFamily = 4 | 6;

export interface Ip {
  family: IpFamily;
  value: bigint;
}

/** A subnet with the bridge's own address in it (`192.168.100.1/24`). */
export interface Cidr {
  family: IpFamily;
  address: Ip;
  prefix: number;
  network: bigint;
  last: bigint;
}

const bits = (family: IpFamily) => (family === 4 ? 32 : 128);

function v6Value(text: string): bigint {
  const [head, tail] = text.includes('::') ? (text.split('::') as [string, string]) : [text, undefined];
  const tailGroups = tail === undefined ? [] : tail ? tail.split(':') : [];
  let headGroups = head ? head.split(':') : [];
  // an embedded IPv4 tail (::ffff:1.2.3.4) counts as two groups
  const expand = (groups: string[]) =>
    groups.flatMap((group) => {
      if (!group.includes('.')) return [group];
      const v4 = parseIp(group).value;
      return [(v4 >> 16n).toString(16), (v4 & 0xffffn).toString(16)];
    });
  headGroups = expand(headGroups);
  const tailExpanded = expand(tailGroups);
  const missing = 8 - headGroups.length - tailExpanded.length;
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(missing).fill('0'), ...tailExpanded];
  return groups.reduce((sum, group) => (sum << 16n) | BigInt(parseInt(group, 16)), 0n);
}

export function parseIp(text: string): Ip {
  if (isIPv4(text)) return { family: 4, value: text.split('.').reduce((sum, part) => (sum << 8n) | BigInt(Number(part)), 0n) };
  if (isIPv6(text) && !text.includes('%')) return { family: 6, value: v6Value(text.toLowerCase()) };
  throw new VirtError('INVALID_ARG', `invalid IP address ${JSON.stringify(text)}`);
}

export function formatIp(ip: Ip): string {
  if (ip.family === 4) return [24n, 16n, 8n, 0n].map((shift) => String((ip.value >> shift) & 0xffn)).join('.');
  const groups = [...Array(8).keys()].map((index) => ((ip.value >> BigInt((7 - index) * 16)) & 0xffffn).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:{3,}/, '::');
}

export function parseCidr(text: string): Cidr {
  const match = /^([^/]+)\/([0-9]{1,3})$/.exec(text);
  if (!match) throw new VirtError('INVALID_ARG', `invalid CIDR ${JSON.stringify(text)}: expected address/prefix`);
  let address: Ip;
  try {
    address = parseIp(match[1]!);
  } catch (error) {
    throw new VirtError('INVALID_ARG', `invalid CIDR ${JSON.stringify(text)}: bad address`, { cause: error });
  }
  const prefix = Number(match[2]);
  const width = bits(address.family);
  if (prefix > width || prefix < (address.family === 4 ? 8 : 16) || prefix > width - 2) {
    throw new VirtError('INVALID_ARG', `invalid CIDR ${JSON.stringify(text)}: prefix must leave room for hosts`);
  }
  const hostBits = BigInt(width - prefix);
  const network = (address.value >> hostBits) << hostBits;
  const last = network | ((1n << hostBits) - 1n);
  if (address.value === network || (address.family === 4 && address.value === last)) {
    throw new VirtError('INVALID_ARG', `invalid CIDR ${JSON.stringify(text)}: the gateway cannot be the network or broadcast address`);
  }
  return { family: address.family, address, prefix, network, last };
}

export function contains(cidr: Cidr, ip: Ip): boolean {
  return ip.family === cidr.family && ip.value >= cidr.network && ip.value <= cidr.last;
}

export function overlaps(a: { family: IpFamily; first: bigint; last: bigint }, b: { family: IpFamily; first: bigint; last: bigint }): boolean {
  return a.family === b.family && a.first <= b.last && b.first <= a.last;
}

/** `192.168.100.0/24` */
export function subnetText(cidr: Cidr): string {
  return `${formatIp({ family: cidr.family, value: cidr.network })}/${cidr.prefix}`;
}

/** Dotted netmask of an IPv4 prefix (dnsmasq's dhcp-range wants one). */
export function netmask(prefix: number): string {
  const value = prefix === 0 ? 0n : ((1n << 32n) - 1n) ^ ((1n << BigInt(32 - prefix)) - 1n);
  return formatIp({ family: 4, value });
}

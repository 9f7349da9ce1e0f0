import { createHash } from 'node:crypto';
import { IFNAME_MAX, VirtError, type DnsHost, type NetworkIp, type NetworkMode } from '@virtbus/api-contract';
import { contains, overlaps, parseCidr, parseIp, type Cidr, type IpFamily } from './addr.js';

/** What the network driver needs of a network: the agent's stored definition with the bridge name resolved. */
export interface NetworkDefinition {
  name: string;
  uuid: string;
  mode: NetworkMode;
  bridge: string;
  uplink?: string;
  domain?: string;
  ipv4?: NetworkIp;
  ipv6?: NetworkIp;
  dnsHosts: DnsHost[];
}

const IFNAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export function assertInterfaceName(name: string, what: string): void {
  if (!IFNAME.test(name)) throw new VirtError('INVALID_ARG', `${what} ${JSON.stringify(name)} is not a valid interface name`);
  if (Buffer.byteLength(name) > IFNAME_MAX) throw new VirtError('INVALID_ARG', `${what} ${JSON.stringify(name)} is longer than ${IFNAME_MAX} characters`);
}

/** vb-<name> when it fits in 15 characters, else vb- and a hash of the name. */
export function defaultBridgeName(network: string): string {
  const plain = `vb-${network}`;
  if (plain.length <= IFNAME_MAX && IFNAME.test(plain)) return plain;
  return `vb-${createHash('sha256').update(network).digest('hex').slice(0, 10)}`;
}

/** nft table owned by virtbus for one network (bridge names are unique on a node). */
export function nftTableName(definition: Pick<NetworkDefinition, 'bridge'>): string {
  return `virtbus-${definition.bridge}`;
}

interface Span {
  family: IpFamily;
  first: bigint;
  last: bigint;
}

function checkIp(ip: NetworkIp | undefined, family: IpFamily, label: string): Cidr | undefined {
  if (!ip) return undefined;
  const cidr = parseCidr(ip.address);
  if (cidr.family !== family) throw new VirtError('INVALID_ARG', `${label}.address ${ip.address} is not an IPv${family} address`);
  const ranges: Span[] = [];
  for (const range of ip.dhcp?.ranges ?? []) {
    const start = parseIp(range.start);
    const end = parseIp(range.end);
    for (const edge of [start, end]) {
      if (!contains(cidr, edge)) throw new VirtError('INVALID_ARG', `${label} DHCP range ${range.start}-${range.end} is outside ${ip.address}`);
    }
    if (start.value > end.value) throw new VirtError('INVALID_ARG', `${label} DHCP range ${range.start}-${range.end} ends before it starts`);
    const span = { family, first: start.value, last: end.value };
    if (overlaps(span, { family, first: cidr.address.value, last: cidr.address.value })) {
      throw new VirtError('INVALID_ARG', `${label} DHCP range ${range.start}-${range.end} contains the gateway address`);
    }
    if (family === 4 && overlaps(span, { family, first: cidr.last, last: cidr.last })) {
      throw new VirtError('INVALID_ARG', `${label} DHCP range ${range.start}-${range.end} contains the broadcast address`);
    }
    for (const other of ranges) {
      if (overlaps(span, other)) throw new VirtError('INVALID_ARG', `${label} DHCP ranges overlap (${range.start}-${range.end})`);
    }
    ranges.push(span);
  }
  checkHosts(ip.dhcp?.hosts ?? [], cidr, label);
  return cidr;
}

function checkHosts(hosts: readonly { mac: string; ip: string }[], cidr: Cidr, label: string): void {
  const macs = new Set<string>();
  const ips = new Set<bigint>();
  for (const host of hosts) {
    const ip = parseIp(host.ip);
    if (!contains(cidr, ip)) throw new VirtError('INVALID_ARG', `${label} static host ${host.mac} → ${host.ip} is outside ${subnetOf(cidr)}`);
    if (ip.value === cidr.address.value) throw new VirtError('INVALID_ARG', `${label} static host ${host.mac} takes the gateway address`);
    if (macs.has(host.mac)) throw new VirtError('INVALID_ARG', `${label} static host ${host.mac} is listed twice`);
    if (ips.has(ip.value)) throw new VirtError('INVALID_ARG', `${label} static address ${host.ip} is given to two hosts`);
    macs.add(host.mac);
    ips.add(ip.value);
  }
}

function subnetOf(cidr: Cidr): string {
  return `the subnet /${cidr.prefix}`;
}

/** Static hosts of an update, checked against the network's subnet. */
export function validateHosts(definition: NetworkDefinition, family: IpFamily, hosts: readonly { mac: string; ip: string }[]): void {
  const ip = family === 4 ? definition.ipv4 : definition.ipv6;
  if (!ip) {
    if (hosts.length > 0) throw new VirtError('INVALID_ARG', `network ${definition.name} has no IPv${family} subnet`);
    return;
  }
  checkHosts(hosts, parseCidr(ip.address), `ipv${family}`);
}

/**
 * Throws INVALID_ARG for anything that would not work: bad names, CIDRs, ranges outside the subnet or overlapping,
 * and subnets or bridges another network of the node already uses.
 */
export function validateDefinition(definition: NetworkDefinition, others: readonly NetworkDefinition[]): void {
  assertInterfaceName(definition.bridge, 'bridge name');
  if (definition.uplink) assertInterfaceName(definition.uplink, 'uplink');
  if (definition.mode === 'bridge') {
    if (definition.ipv4 || definition.ipv6 || definition.dnsHosts.length > 0 || definition.uplink) {
      throw new VirtError('INVALID_ARG', 'a bridge-mode network only names an existing bridge: no addresses, DHCP, DNS or uplink');
    }
  } else if (definition.mode !== 'isolated' && !definition.ipv4 && !definition.ipv6) {
    throw new VirtError('INVALID_ARG', `a ${definition.mode} network needs an ipv4 or ipv6 subnet`);
  } else if (definition.mode === 'isolated' && definition.uplink) {
    throw new VirtError('INVALID_ARG', 'an isolated network has no uplink');
  }
  const v4 = checkIp(definition.ipv4, 4, 'ipv4');
  const v6 = checkIp(definition.ipv6, 6, 'ipv6');
  for (const host of definition.dnsHosts) parseIp(host.ip);
  for (const other of others) {
    if (other.uuid === definition.uuid) continue;
    if (other.name === definition.name) throw new VirtError('INVALID_ARG', `network ${definition.name} already exists`);
    if (other.bridge === definition.bridge && definition.mode !== 'bridge' && other.mode !== 'bridge') {
      throw new VirtError('INVALID_ARG', `bridge ${definition.bridge} is already used by network ${other.name}`);
    }
    for (const [mine, theirs] of [
      [v4, other.ipv4],
      [v6, other.ipv6],
    ] as const) {
      if (!mine || !theirs) continue;
      const their = parseCidr(theirs.address);
      if (overlaps({ family: mine.family, first: mine.network, last: mine.last }, { family: their.family, first: their.network, last: their.last })) {
        throw new VirtError('INVALID_ARG', `subnet ${(mine.family === 4 ? definition.ipv4 : definition.ipv6)?.address} overlaps network ${other.name}`);
      }
    }
  }
}

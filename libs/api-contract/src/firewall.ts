import Type, { type Static } from 'typebox';
import { VirtError } from './errors.js';
import { ObjectName } from './names.js';
import { Access } from './subjects.js';
import { HttpTags, PermissionClass, type OperationSpec } from './operation-spec.js';
import { namedListOperation, PageResponseFields } from './paging.js';

/** A port (`80`) or an inclusive range (`1000-2000`). */
export const PortRange = Type.String({ pattern: '^[0-9]{1,5}(-[0-9]{1,5})?$', maxLength: 11, description: 'Port or inclusive range, e.g. `80` or `1000-2000`' });
/** An IPv4 or IPv6 network or address, e.g. `10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`. */
export const FirewallCidr = Type.String({ pattern: '^[0-9A-Fa-f.:]{2,45}(/[0-9]{1,3})?$', maxLength: 49, description: 'IPv4 or IPv6 address or network (CIDR)' });

export const FirewallActions = ['allow', 'deny', 'drop'] as const;
export const FirewallDirections = ['in', 'out', 'inout'] as const;
export const FirewallProtocols = ['all', 'tcp', 'udp', 'icmp', 'icmpv6'] as const;

export const FirewallRule = Type.Object(
  {
    action: Type.Enum([...FirewallActions], { description: 'allow accepts; drop discards silently; deny refuses (a reject where the kernel can, else a drop)' }),
    direction: Type.Enum([...FirewallDirections], { description: 'in: traffic to the domain; out: traffic from it; inout: both' }),
    protocol: Type.Optional(Type.Enum([...FirewallProtocols], { description: 'all when absent' })),
    sourcePorts: Type.Optional(Type.Array(PortRange, { maxItems: 32, description: 'tcp/udp only' })),
    destinationPorts: Type.Optional(Type.Array(PortRange, { maxItems: 32, description: 'tcp/udp only' })),
    source: Type.Optional(Type.Array(FirewallCidr, { maxItems: 64, description: "The packet's source address; IPv4 and IPv6 may be mixed" })),
    destination: Type.Optional(Type.Array(FirewallCidr, { maxItems: 64, description: "The packet's destination address" })),
    priority: Type.Optional(Type.Integer({ minimum: -1000, maximum: 1000, description: 'Lower runs first (0 when absent); ties keep their order' })),
    comment: Type.Optional(Type.String({ maxLength: 128, pattern: '^[^\\x00-\\x1f\\x7f"\\\\]*$' })),
  },
  { additionalProperties: false, title: 'FirewallRule' },
);
export type FirewallRule = Static<typeof FirewallRule>;

export const FirewallAntiSpoofing = Type.Object(
  {
    mac: Type.Optional(Type.Boolean({ description: "Drop frames from the domain whose source MAC is not the NIC's" })),
    ip: Type.Optional(Type.Boolean({ description: "Drop packets from the domain whose source IP is not one of the NIC's (DHCP requests pass)" })),
  },
  { additionalProperties: false },
);

export const FirewallRuleSetSpec = {
  rules: Type.Array(FirewallRule, { maxItems: 256 }),
  antiSpoofing: Type.Optional(FirewallAntiSpoofing),
  description: Type.Optional(Type.String({ maxLength: 256 })),
};

export const FirewallRuleSetsPost = Type.Object({ name: ObjectName, ...FirewallRuleSetSpec }, { additionalProperties: false, title: 'FirewallRuleSetsPost' });
export type FirewallRuleSetsPost = Static<typeof FirewallRuleSetsPost>;
export const FirewallRuleSetPut = Type.Object(FirewallRuleSetSpec, { additionalProperties: false, title: 'FirewallRuleSetPut' });
export type FirewallRuleSetPut = Static<typeof FirewallRuleSetPut>;

export const FirewallBinding = Type.Object(
  {
    domain: Type.String({ description: 'Domain uuid' }),
    device: Type.String({ description: 'Host-side device (tap) the rules filter' }),
    mac: Type.String(),
    ips: Type.Array(Type.String()),
  },
  { additionalProperties: false },
);

export const FirewallRuleSet = Type.Object(
  {
    name: ObjectName,
    ...FirewallRuleSetSpec,
    updatedAt: Type.String({ format: 'date-time' }),
    bindings: Type.Array(FirewallBinding, { description: 'Running NICs the rule set is applied to' }),
  },
  { additionalProperties: false, title: 'FirewallRuleSet' },
);
export type FirewallRuleSet = Static<typeof FirewallRuleSet>;

export const FirewallRuleSetList = Type.Object({ ruleSets: Type.Array(FirewallRuleSet), ...PageResponseFields }, { additionalProperties: false, title: 'FirewallRuleSetList' });
export type FirewallRuleSetList = Static<typeof FirewallRuleSetList>;

export interface ParsedCidr {
  family: 4 | 6;
  /** The text as nft takes it: `a.b.c.d/n` (host bits allowed) or a bare address. */
  text: string;
}

/** A network or address of either family; throws INVALID_ARG naming the rule and field. */
export function parseFirewallCidr(text: string, where = 'address'): ParsedCidr {
  const [address = '', prefix, extra] = text.split('/');
  const v4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/.test(address);
  const v6 = !v4 && isIpv6(address);
  const bits = prefix === undefined ? undefined : /^\d{1,3}$/.test(prefix) ? Number(prefix) : NaN;
  if (extra !== undefined || (!v4 && !v6) || (bits !== undefined && !(bits >= 0 && bits <= (v4 ? 32 : 128)))) {
    throw new VirtError('INVALID_ARG', `${where}: invalid CIDR ${JSON.stringify(text)}`);
  }
  return { family: v4 ? 4 : 6, text };
}

function isIpv6(text: string): boolean {
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || text.includes(':::')) return false;
  const halves = text.split('::');
  if (halves.length > 2) return false;
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const all = halves.flatMap(groups);
  let count = 0;
  for (const [i, group] of all.entries()) {
    const embeddedV4 = i === all.length - 1 && group.includes('.');
    if (embeddedV4) {
      if (!/^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/.test(group)) return false;
      count += 2;
    } else if (/^[0-9A-Fa-f]{1,4}$/.test(group)) count += 1;
    else return false;
  }
  return halves.length === 2 ? count < 8 : count === 8;
}

/** `80` → [80, 80]; `1000-2000` → [1000, 2000]; throws INVALID_ARG for reversed or out-of-range ports. */
export function parsePortRange(text: string, where = 'port'): [number, number] {
  const match = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  const from = match ? Number(match[1]) : NaN;
  const to = match ? Number(match[2] ?? match[1]) : NaN;
  if (!match || from > 65535 || to > 65535) throw new VirtError('INVALID_ARG', `${where}: invalid port ${JSON.stringify(text)}`);
  if (from > to) throw new VirtError('INVALID_ARG', `${where}: port range ${text} is reversed`);
  return [from, to];
}

/** Semantic checks the schema cannot express: CIDRs, port ranges, ports only with tcp/udp, families that can match. */
export function checkFirewallRules(rules: readonly FirewallRule[]): void {
  rules.forEach((rule, index) => {
    const where = `rules[${index}]`;
    const protocol = rule.protocol ?? 'all';
    const ports = [...(rule.sourcePorts ?? []), ...(rule.destinationPorts ?? [])];
    for (const port of ports) parsePortRange(port, where);
    if (ports.length > 0 && protocol !== 'tcp' && protocol !== 'udp') throw new VirtError('INVALID_ARG', `${where}: ports need protocol tcp or udp`);
    const families = (list: readonly string[] | undefined, field: string) => new Set((list ?? []).map((cidr) => parseFirewallCidr(cidr, `${where}.${field}`).family));
    const source = families(rule.source, 'source');
    const destination = families(rule.destination, 'destination');
    const wanted = protocol === 'icmp' ? 4 : protocol === 'icmpv6' ? 6 : undefined;
    const possible = [4, 6].filter((f) => (source.size === 0 || source.has(f as 4 | 6)) && (destination.size === 0 || destination.has(f as 4 | 6)) && (wanted === undefined || wanted === f));
    if (possible.length === 0) throw new VirtError('INVALID_ARG', `${where}: addresses and protocol name no common IP family, so the rule could never match`);
  });
}

const RuleSetRef = Type.Object({ name: ObjectName }, { additionalProperties: false });

export const FirewallOperations = {
  'firewall.ruleset.list': namedListOperation('FirewallRuleSetListRequest', FirewallRuleSetList, 'Firewall rule sets with the running NICs they are applied to', { path: '/firewall/rulesets', operationId: 'listFirewallRuleSets', tag: HttpTags.Firewall }),
  'firewall.ruleset.get': {
    access: Access.ReadOnly,
    request: RuleSetRef,
    response: FirewallRuleSet,
    summary: 'One rule set',
    permission: PermissionClass.Read,
    errors: ['NOT_FOUND'],
    http: { method: 'GET', path: '/firewall/rulesets/:name', operationId: 'getFirewallRuleSet', tag: HttpTags.Firewall },
  },
  'firewall.ruleset.define': {
    access: Access.ReadWrite,
    request: FirewallRuleSetsPost,
    response: FirewallRuleSet,
    summary: 'Define a rule set (nwfilter-define)',
    permission: PermissionClass.Network,
    errors: ['OPERATION_INVALID', 'PAYLOAD_TOO_LARGE'],
    http: { method: 'POST', path: '/firewall/rulesets', operationId: 'defineFirewallRuleSet', tag: HttpTags.Firewall, status: 201, body: true },
  },
  'firewall.ruleset.update': {
    access: Access.ReadWrite,
    request: Type.Object({ name: ObjectName, ruleSet: FirewallRuleSetPut }, { additionalProperties: false }),
    response: FirewallRuleSet,
    summary: 'Replace the rules; every running NIC bound to the set gets them at once',
    permission: PermissionClass.Network,
    errors: ['NOT_FOUND', 'PAYLOAD_TOO_LARGE'],
    http: { method: 'PUT', path: '/firewall/rulesets/:name', operationId: 'updateFirewallRuleSet', tag: HttpTags.Firewall, body: 'ruleSet' },
    wait: { seconds: 60 },
  },
  'firewall.ruleset.delete': {
    access: Access.ReadWrite,
    request: RuleSetRef,
    response: FirewallRuleSet,
    summary: 'Delete a rule set no running NIC uses (nwfilter-undefine)',
    permission: PermissionClass.Network,
    errors: ['NOT_FOUND', 'OPERATION_INVALID'],
    http: { method: 'DELETE', path: '/firewall/rulesets/:name', operationId: 'deleteFirewallRuleSet', tag: HttpTags.Firewall },
  },
} as const satisfies Record<string, OperationSpec>;

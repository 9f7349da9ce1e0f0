import { checkFirewallRules, parseFirewallCidr, parsePortRange, VirtError, type FirewallRule } from '@virtbus/api-contract';

/** The one nftables table virtbus's NIC filters live in; nothing else is ever flushed or deleted. */
export const FIREWALL_FAMILY = 'bridge';
export const FIREWALL_TABLE = 'virtbus-fw';
const TABLE = `${FIREWALL_FAMILY} ${FIREWALL_TABLE}`;
export const OUT_MAP = 'out-nics';
export const IN_MAP = 'in-nics';

export interface RuleSetBody {
  rules: readonly FirewallRule[];
  antiSpoofing?: { mac?: boolean; ip?: boolean };
}

export interface NicFilterSpec {
  /** Host-side device of the NIC (its tap, or a veth port standing in for one) on a Linux bridge. */
  device: string;
  mac: string;
  /** The NIC's addresses (or networks) for IP anti-spoofing; without any of a family, that family is not checked. */
  ips: readonly string[];
  ruleSet: RuleSetBody;
}

export interface RenderOptions {
  /** The kernel has reject in bridge chains (CONFIG_NFT_BRIDGE_REJECT); otherwise deny drops. */
  reject: boolean;
}

const DEVICE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export function assertDevice(device: string): void {
  if (!DEVICE.test(device)) throw new VirtError('INVALID_ARG', `invalid device name ${JSON.stringify(device)}`);
}

export const outChain = (device: string) => `nic-${device}-out`;
export const inChain = (device: string) => `nic-${device}-in`;
const q = (text: string) => `"${text}"`;

function set(items: readonly string[]): string {
  return items.length === 1 ? items[0]! : `{ ${items.join(', ')} }`;
}

function portSet(ports: readonly string[]): string {
  return set(ports.map((p) => parsePortRange(p).join('-').replace(/^(\d+)-\1$/, '$1')));
}

/** nft expressions of one rule; one line per IP family it needs (none when the rule names no address or family). */
export function renderRule(rule: FirewallRule, chain: 'in' | 'out', options: RenderOptions): string[] {
  const protocol = rule.protocol ?? 'all';
  const byFamily = (list: readonly string[] | undefined, family: 4 | 6) => (list ?? []).map((c) => parseFirewallCidr(c)).filter((c) => c.family === family).map((c) => c.text);
  const namesAddresses = (rule.source?.length ?? 0) > 0 || (rule.destination?.length ?? 0) > 0;
  const familyNeeded = namesAddresses || protocol === 'icmp' || protocol === 'icmpv6';
  const families: (4 | 6 | undefined)[] = familyNeeded
    ? ([4, 6] as const).filter(
        (f) =>
          (!rule.source?.length || byFamily(rule.source, f).length > 0) &&
          (!rule.destination?.length || byFamily(rule.destination, f).length > 0) &&
          (protocol !== 'icmp' || f === 4) &&
          (protocol !== 'icmpv6' || f === 6),
      )
    : [undefined];
  const verdict = rule.action === 'allow' ? 'accept' : rule.action === 'deny' && options.reject && chain === 'out' ? 'reject' : 'drop';
  const comment = rule.comment ? ` comment ${q(rule.comment)}` : '';
  return families.map((family) => {
    const parts: string[] = [];
    const ipWord = family === 6 ? 'ip6' : 'ip';
    if (family !== undefined) {
      const source = byFamily(rule.source, family);
      const destination = byFamily(rule.destination, family);
      if (source.length) parts.push(`${ipWord} saddr ${set(source)}`);
      if (destination.length) parts.push(`${ipWord} daddr ${set(destination)}`);
      if (!source.length && !destination.length) parts.push(`ether type ${family === 6 ? 'ip6' : 'ip'}`);
    }
    if (protocol === 'tcp' || protocol === 'udp') {
      parts.push(`meta l4proto ${protocol}`);
      if (rule.sourcePorts?.length) parts.push(`${protocol} sport ${portSet(rule.sourcePorts)}`);
      if (rule.destinationPorts?.length) parts.push(`${protocol} dport ${portSet(rule.destinationPorts)}`);
    } else if (protocol === 'icmp') parts.push('meta l4proto icmp');
    else if (protocol === 'icmpv6') parts.push('meta l4proto ipv6-icmp');
    parts.push('counter', verdict);
    return `${parts.join(' ')}${comment}`;
  });
}

/** Anti-spoofing for traffic from the NIC: its MAC, and its IPs where known (0.0.0.0 and link-local stay for DHCP and NDP). */
export function renderAntiSpoofing(spec: NicFilterSpec): string[] {
  const lines: string[] = [];
  const mac = spec.mac.toLowerCase();
  if (spec.ruleSet.antiSpoofing?.mac) {
    lines.push(`ether saddr != ${mac} counter drop`, `arp saddr ether != ${mac} counter drop`);
  }
  if (spec.ruleSet.antiSpoofing?.ip) {
    const parsed = spec.ips.map((ip) => parseFirewallCidr(ip, 'NIC address'));
    const v4 = parsed.filter((p) => p.family === 4).map((p) => p.text);
    const v6 = parsed.filter((p) => p.family === 6).map((p) => p.text);
    if (v4.length) lines.push(`ip saddr != ${set([...v4, '0.0.0.0'])} counter drop`, `arp saddr ip != ${set([...v4, '0.0.0.0'])} counter drop`);
    if (v6.length) lines.push(`ip6 saddr != ${set([...v6, 'fe80::/10', '::'])} counter drop`);
  }
  return lines;
}

/** Rules of the NIC's two chains, in priority order (lower first, ties in the order given). */
export function renderNicChains(spec: NicFilterSpec, options: RenderOptions): { out: string[]; in: string[] } {
  assertDevice(spec.device);
  if (!MAC.test(spec.mac.toLowerCase())) throw new VirtError('INVALID_ARG', `invalid MAC ${JSON.stringify(spec.mac)}`);
  checkFirewallRules(spec.ruleSet.rules);
  const ordered = spec.ruleSet.rules.map((rule, index) => ({ rule, index })).sort((a, b) => (a.rule.priority ?? 0) - (b.rule.priority ?? 0) || a.index - b.index);
  const forChain = (chain: 'in' | 'out') =>
    ordered.filter(({ rule }) => rule.direction === chain || rule.direction === 'inout').flatMap(({ rule }) => renderRule(rule, chain, options));
  return { out: [...renderAntiSpoofing(spec), ...forChain('out')], in: forChain('in') };
}

/**
 * One nft transaction that creates the table's skeleton if needed and (re)writes the NIC's chains; the bridge hooks
 * jump to a NIC's chain through a verdict map keyed by device name. Braces stand on their own lines (nft 1.0.6).
 */
export function applyScript(spec: NicFilterSpec, options: RenderOptions): string {
  const chains = renderNicChains(spec, options);
  const out = outChain(spec.device);
  const inn = inChain(spec.device);
  return [
    `table ${TABLE} {`,
    `  map ${OUT_MAP} {`,
    '    type ifname : verdict',
    '  }',
    `  map ${IN_MAP} {`,
    '    type ifname : verdict',
    '  }',
    '  chain prerouting {',
    '    type filter hook prerouting priority -200; policy accept;',
    '  }',
    '  chain postrouting {',
    '    type filter hook postrouting priority 200; policy accept;',
    '  }',
    `  chain ${out} {`,
    '  }',
    `  chain ${inn} {`,
    '  }',
    '}',
    `flush chain ${TABLE} prerouting`,
    `add rule ${TABLE} prerouting iifname vmap @${OUT_MAP}`,
    `flush chain ${TABLE} postrouting`,
    `add rule ${TABLE} postrouting oifname vmap @${IN_MAP}`,
    `flush chain ${TABLE} ${out}`,
    ...chains.out.map((rule) => `add rule ${TABLE} ${out} ${rule}`),
    `flush chain ${TABLE} ${inn}`,
    ...chains.in.map((rule) => `add rule ${TABLE} ${inn} ${rule}`),
    `add element ${TABLE} ${OUT_MAP} { ${q(spec.device)} : jump ${out} }`,
    `add element ${TABLE} ${IN_MAP} { ${q(spec.device)} : jump ${inn} }`,
    '',
  ].join('\n');
}

/** What of virtbus's table exists, from `nft -j list table`. */
export interface TableState {
  chains: string[];
  elements: { map: string; key: string }[];
}

export function parseTableState(json: string): TableState {
  const items = (JSON.parse(json) as { nftables?: Record<string, unknown>[] }).nftables ?? [];
  const chains: string[] = [];
  const elements: { map: string; key: string }[] = [];
  for (const item of items) {
    const chain = item['chain'] as { name?: string } | undefined;
    if (chain?.name) chains.push(chain.name);
    const map = item['map'] as { name?: string; elem?: unknown[] } | undefined;
    if (map?.name) for (const elem of map.elem ?? []) if (Array.isArray(elem) && typeof elem[0] === 'string') elements.push({ map: map.name, key: elem[0] });
  }
  return { chains, elements };
}

/** Removes the NIC's chains and map entries; when no NIC is left, the whole virtbus table goes. */
export function removeScript(device: string, state: TableState): string {
  assertDevice(device);
  const mine = new Set([outChain(device), inChain(device)]);
  const others = state.chains.filter((chain) => chain.startsWith('nic-') && !mine.has(chain));
  if (others.length === 0) return `delete table ${TABLE}\n`;
  const lines: string[] = [];
  for (const { map, key } of state.elements) if (key === device) lines.push(`delete element ${TABLE} ${map} { ${q(key)} }`);
  for (const chain of state.chains) if (mine.has(chain)) lines.push(`flush chain ${TABLE} ${chain}`, `delete chain ${TABLE} ${chain}`);
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/** Devices that have chains in the table. */
export function filteredDevices(state: TableState): string[] {
  return state.chains.filter((chain) => /^nic-.+-out$/.test(chain)).map((chain) => chain.slice(4, -4));
}

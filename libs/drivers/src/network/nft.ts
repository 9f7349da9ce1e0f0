import { parseCidr, subnetText } from './addr.js';
import { nftTableName, type NetworkDefinition } from './definition.js';

const quote = (name: string) => `"${name}"`;

/**
 * The network's own nftables table (family inet): forward rules for the bridge and, in NAT mode, masquerade.
 * Closing braces stand on their own lines (nft 1.0.6 rejects a `}` after a rule on the same line).
 * Other tables are never touched: a drop here only concerns this bridge's traffic.
 */
export function nftRuleset(definition: NetworkDefinition): string {
  const table = nftTableName(definition);
  const br = quote(definition.bridge);
  const out = definition.uplink ? ` oifname ${quote(definition.uplink)}` : '';
  const inp = definition.uplink ? ` iifname ${quote(definition.uplink)}` : '';
  const subnets = [definition.ipv4, definition.ipv6]
    .filter((ip) => ip !== undefined)
    .map((ip) => {
      const cidr = parseCidr(ip.address);
      return { family: cidr.family === 4 ? 'ip' : 'ip6', subnet: subnetText(cidr) };
    });
  const forward: string[] = [`iifname ${br} oifname ${br} accept`];
  const postrouting: string[] = [];
  if (definition.mode === 'nat' || definition.mode === 'routed') {
    for (const { family, subnet } of subnets) {
      forward.push(`iifname ${br}${out} ${family} saddr ${subnet} accept`);
      if (definition.mode === 'nat' && family === 'ip') {
        forward.push(`oifname ${br}${inp} ip daddr ${subnet} ct state established,related accept`);
        postrouting.push(`ip saddr ${subnet} ip daddr != ${subnet} oifname != ${br}${out} masquerade`);
      } else {
        forward.push(`oifname ${br}${inp} ${family} daddr ${subnet} accept`);
      }
    }
  }
  forward.push(`iifname ${br} reject`, `oifname ${br} reject`);
  const chain = (name: string, hook: string, body: string[]) => [`  chain ${name} {`, `    ${hook}`, ...body.map((rule) => `    ${rule}`), '  }'];
  const lines = [
    `table inet ${table} {`,
    ...chain('forward', 'type filter hook forward priority filter; policy accept;', forward),
    ...(postrouting.length ? chain('postrouting', 'type nat hook postrouting priority srcnat; policy accept;', postrouting) : []),
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

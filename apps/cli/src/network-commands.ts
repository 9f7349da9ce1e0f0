import { readFile } from 'node:fs/promises';
import type { Network, NetworksPost } from '@virtbus/api-contract';
import { listAll, print, resolveNode, type CommandContext } from './commands.js';
import { keyValues, table } from './format.js';
import { operationUrl } from './http.js';

/** virsh net-list [--all] */
export async function netList(ctx: CommandContext, all: boolean, max?: number): Promise<void> {
  const networks = await listAll<'networks', Network>(ctx, operationUrl('network.list', { node: await resolveNode(ctx) }), 'networks', { max });
  const shown = all ? networks : networks.filter((net) => net.state === 'active');
  print(ctx, { networks: shown }, () =>
    table(['Name', 'State', 'Autostart', 'Persistent', 'Mode', 'Bridge'], shown.map((n) => [n.name, n.state, n.autostart ? 'yes' : 'no', n.persistent ? 'yes' : 'no', n.mode, n.bridge])),
  );
}

export async function netInfo(ctx: CommandContext, name: string): Promise<void> {
  const n = await ctx.http.call('network.get', { node: await resolveNode(ctx), network: name });
  print(ctx, n, () =>
    keyValues([
      ['Name', n.name],
      ['UUID', n.uuid],
      ['Active', n.state === 'active' ? 'yes' : 'no'],
      ['Persistent', n.persistent ? 'yes' : 'no'],
      ['Autostart', n.autostart ? 'yes' : 'no'],
      ['Mode', n.mode],
      ['Bridge', n.bridge],
      ['IPv4', n.ipv4?.address ?? '-'],
      ['IPv6', n.ipv6?.address ?? '-'],
    ]),
  );
}

/** virsh net-define FILE (a NetworksPost JSON file) */
export async function netDefine(ctx: CommandContext, file: string): Promise<void> {
  const body = JSON.parse(await readFile(file, 'utf8')) as NetworksPost;
  const n = await ctx.http.call('network.define', { node: await resolveNode(ctx) }, body);
  print(ctx, n, () => `Network ${n.name} defined (${n.uuid})`);
}

/** net-start / net-destroy */
export async function netState(ctx: CommandContext, name: string, action: 'start' | 'stop'): Promise<void> {
  const n = await ctx.http.call('network.state', { node: await resolveNode(ctx), network: name }, { action });
  print(ctx, n, () => `Network ${n.name} ${action === 'start' ? 'started' : 'destroyed'}`);
}

export async function netUndefine(ctx: CommandContext, name: string): Promise<void> {
  const n = await ctx.http.call('network.undefine', { node: await resolveNode(ctx), network: name });
  print(ctx, n, () => `Network ${n.name} has been undefined`);
}

export async function netAutostart(ctx: CommandContext, name: string, autostart: boolean): Promise<void> {
  const n = await ctx.http.call('network.update', { node: await resolveNode(ctx), network: name }, { autostart });
  print(ctx, n, () => `Network ${n.name} ${autostart ? 'marked as autostarted' : 'unmarked as autostarted'}`);
}

export async function netDhcpLeases(ctx: CommandContext, name: string): Promise<void> {
  const list = await ctx.http.call('network.leases', { node: await resolveNode(ctx), network: name });
  print(ctx, list, () =>
    table(
      ['Expiry Time', 'MAC address', 'Protocol', 'IP address', 'Hostname', 'Client ID'],
      list.leases.map((l) => [l.expiresAt ?? 'never', l.mac ?? '-', l.type, `${l.ip}/${l.prefix}`, l.hostname ?? '-', l.clientId ?? '-']),
    ),
  );
}

/** virsh domifaddr DOMAIN (addresses from the DHCP leases) */
export async function domifaddr(ctx: CommandContext, domain: string): Promise<void> {
  const list = await ctx.http.call('domain.interfaces', { node: await resolveNode(ctx), id: domain });
  const rows = list.interfaces.flatMap((nic) =>
    nic.addresses.length ? nic.addresses.map((a) => [nic.name, nic.mac, a.type, `${a.address}/${a.prefix}`]) : [[nic.name, nic.mac, '-', '-']],
  );
  print(ctx, list, () => table(['Name', 'MAC address', 'Protocol', 'Address'], rows));
}

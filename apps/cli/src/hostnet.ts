import { readFile } from 'node:fs/promises';
import { VirtError, type FirewallRuleSet, type FirewallRuleSetList, type HostInterface, type HostInterfaceChange, type HostInterfaceList, type HostInterfaceTransaction } from '@virtbus/api-contract';
import { listAll, need, print, resolveNode, type CommandContext } from './commands.js';
import { bytes, keyValues, table } from './format.js';
import { operationUrl } from './http.js';

export const HOSTNET_USAGE = `iface-list                            host interfaces of the node
iface-info IFACE                      one host interface
iface-begin [--timeout S]             snapshot the interface config (rolled back after S seconds unless committed)
iface-commit | iface-rollback         keep or undo the changes since iface-begin
iface-start IFACE | iface-destroy IFACE   set an interface up or down
iface-set IFACE [mtu=N] [master=BR|nomaster] [up|down]
iface-addr-add IFACE ADDR/PREFIX | iface-addr-del IFACE ADDR/PREFIX
iface-bridge-add NAME | iface-vlan-add NAME PARENT VLAN-ID | iface-delete NAME
iface-apply FILE.json                 apply a HostInterfaceChanges file, all or nothing
nwfilter-list                         firewall rule sets and the NICs they filter
nwfilter-dumpxml NAME                 one rule set as JSON
nwfilter-define FILE.json             define a rule set (FirewallRuleSetsPost), or replace its rules if it exists
nwfilter-undefine NAME                delete a rule set no running NIC uses
`;


const addressList = (i: HostInterface) => i.addresses.map((a) => `${a.address}/${a.prefix}`).join(' ');

function setChange(name: string, words: readonly string[]): HostInterfaceChange {
  const change: Extract<HostInterfaceChange, { action: 'set' }> = { action: 'set', name };
  for (const word of words) {
    const [key, value] = word.split('=', 2);
    if (key === 'mtu' && value && /^\d+$/.test(value)) change.mtu = Number(value);
    else if (key === 'master' && value) change.master = value;
    else if (word === 'nomaster') change.master = null;
    else if (word === 'up' || word === 'down') change.up = word === 'up';
    else throw new VirtError('INVALID_ARG', `iface-set does not understand ${JSON.stringify(word)}; use mtu=N, master=BR, nomaster, up or down`);
  }
  return change;
}

/** The change a one-change iface verb stands for. */
function changeFor(command: string, args: readonly string[]): HostInterfaceChange {
  const name = need(args, 0, 'an interface name', command);
  switch (command) {
    case 'iface-start':
      return { action: 'set', name, up: true };
    case 'iface-destroy':
      return { action: 'set', name, up: false };
    case 'iface-set':
      return setChange(name, args.slice(1));
    case 'iface-addr-add':
      return { action: 'add-address', name, address: need(args, 1, 'ADDR/PREFIX', command) };
    case 'iface-addr-del':
      return { action: 'remove-address', name, address: need(args, 1, 'ADDR/PREFIX', command) };
    case 'iface-bridge-add':
      return { action: 'create-bridge', name, up: true };
    case 'iface-vlan-add': {
      const id = need(args, 2, 'a VLAN id', command);
      if (!/^\d+$/.test(id)) throw new VirtError('INVALID_ARG', 'the VLAN id is a whole number');
      return { action: 'create-vlan', name, parent: need(args, 1, 'a parent interface', command), vlanId: Number(id), up: true };
    }
    case 'iface-delete':
      return { action: 'delete', name };
    default:
      throw new VirtError('INVALID_ARG', `unknown command ${command}`);
  }
}

function printList(ctx: CommandContext, list: HostInterfaceList): void {
  print(ctx, list, () => {
    const rows = list.interfaces.map((i) => [i.name, i.kind, i.adminUp ? 'up' : 'down', i.state, i.mtu, i.mac ?? '', i.master ?? '', addressList(i)]);
    const text = table(['Name', 'Kind', 'Admin', 'State', 'MTU', 'MAC', 'Master', 'Addresses'], rows);
    return list.transaction ? `${text}\n\nTransaction ${list.transaction.id} open since ${list.transaction.startedAt} (rollback at ${list.transaction.expiresAt})` : text;
  });
}

function printTransaction(ctx: CommandContext, t: HostInterfaceTransaction, verb: string): void {
  print(ctx, t, () => `Interface transaction ${t.id} ${verb} (${t.changes} change(s))`);
}

const ruleCount = (r: FirewallRuleSet) => `${r.rules.length} rule(s)${r.antiSpoofing?.mac || r.antiSpoofing?.ip ? ', anti-spoofing' : ''}`;

async function runFirewallCommand(ctx: CommandContext, command: string, args: readonly string[]): Promise<number> {
  const node = await resolveNode(ctx);
  switch (command) {
    case 'nwfilter-list': {
      const list: FirewallRuleSetList = { ruleSets: await listAll<'ruleSets', FirewallRuleSet>(ctx, operationUrl('firewall.ruleset.list', { node }), 'ruleSets') };
      print(ctx, list, () => table(['Name', 'Rules', 'Bound to'], list.ruleSets.map((r) => [r.name, ruleCount(r), r.bindings.map((b) => b.device).join(' ')])));
      return 0;
    }
    case 'nwfilter-dumpxml': {
      // virsh's name; the rule set comes as JSON
      const ruleSet = await ctx.http.call('firewall.ruleset.get', { node, name: need(args, 0, 'a rule set name', command) });
      ctx.output.out(JSON.stringify(ruleSet, null, 2));
      return 0;
    }
    case 'nwfilter-define': {
      const body = JSON.parse(await readFile(need(args, 0, 'a FILE.json', command), 'utf8')) as { name?: unknown } & Record<string, unknown>;
      if (typeof body.name !== 'string') throw new VirtError('INVALID_ARG', 'the rule set file needs a name');
      const { name, ...spec } = body;
      const exists = await ctx.http.call('firewall.ruleset.get', { node, name }).then(
        () => true,
        (error: unknown) => (VirtError.is(error, 'NOT_FOUND') ? false : Promise.reject(error)),
      );
      const ruleSet = exists ? await ctx.http.call('firewall.ruleset.update', { node, name }, spec) : await ctx.http.call('firewall.ruleset.define', { node }, body);
      print(ctx, ruleSet, () => `Network filter ${ruleSet.name} ${exists ? 'updated' : 'defined'} (${ruleCount(ruleSet)})`);
      return 0;
    }
    case 'nwfilter-undefine': {
      const ruleSet = await ctx.http.call('firewall.ruleset.delete', { node, name: need(args, 0, 'a rule set name', command) });
      print(ctx, ruleSet, () => `Network filter ${ruleSet.name} undefined`);
      return 0;
    }
    default:
      throw new VirtError('INVALID_ARG', `unknown command ${command}; see virtbus --help`);
  }
}

/** Runs an iface-* or nwfilter-* verb; undefined when the command is not one of them. */
export async function runHostNetCommand(ctx: CommandContext, command: string, args: readonly string[], options: { timeout?: number }): Promise<number | undefined> {
  if (command.startsWith('nwfilter-')) return runFirewallCommand(ctx, command, args);
  if (!command.startsWith('iface-')) return undefined;
  const node = await resolveNode(ctx);
  switch (command) {
    case 'iface-list': {
      let transaction: HostInterfaceList['transaction'];
      const interfaces = await listAll<'interfaces', HostInterface>(ctx, operationUrl('iface.list', { node }), 'interfaces', { onPage: (page) => (transaction = (page as HostInterfaceList).transaction) });
      printList(ctx, { interfaces, ...(transaction ? { transaction } : {}) });
      return 0;
    }
    case 'iface-info': {
      const i = await ctx.http.call('iface.get', { node, name: need(args, 0, 'an interface name', command) });
      print(ctx, i, () =>
        keyValues([
          ['Name', i.name],
          ['Kind', i.kind],
          ['State', `${i.adminUp ? 'up' : 'down'} (${i.state})`],
          ['MTU', i.mtu],
          ['MAC', i.mac],
          ['Master', i.master],
          ['Members', i.members?.join(' ')],
          ['VLAN', i.vlan ? `${i.vlan.id} on ${i.vlan.parent}` : undefined],
          ['Addresses', addressList(i) || 'none'],
          ['RX', i.stats ? `${bytes(i.stats.rxBytes)} in ${i.stats.rxPackets} packets` : undefined],
          ['TX', i.stats ? `${bytes(i.stats.txBytes)} in ${i.stats.txPackets} packets` : undefined],
        ]),
      );
      return 0;
    }
    case 'iface-begin':
      printTransaction(ctx, await ctx.http.call('iface.begin', { node }, options.timeout ? { timeoutSeconds: options.timeout } : {}), 'begun');
      return 0;
    case 'iface-commit':
      printTransaction(ctx, await ctx.http.call('iface.commit', { node }), 'committed');
      return 0;
    case 'iface-rollback':
      printTransaction(ctx, await ctx.http.call('iface.rollback', { node }), 'rolled back');
      return 0;
    case 'iface-apply': {
      const body = JSON.parse(await readFile(need(args, 0, 'a FILE.json', command), 'utf8')) as unknown;
      printList(ctx, await ctx.http.call('iface.configure', { node }, body));
      return 0;
    }
    default:
      printList(ctx, await ctx.http.call('iface.configure', { node }, { changes: [changeFor(command, args)] }));
      return 0;
  }
}

import { isIP } from 'node:net';
import { VirtError, type HostInterface, type HostInterfaceAddress, type HostInterfaceChange, type HostInterfaceKind } from '@virtbus/api-contract';
import { runInNetns } from '../util/netns.js';

/** The parts of `ip -j -s -d addr` that virtbus reads. */
interface IpLink {
  ifindex: number;
  ifname: string;
  flags?: string[];
  mtu?: number;
  operstate?: string;
  link_type?: string;
  address?: string;
  master?: string;
  link?: string | null;
  linkinfo?: { info_kind?: string; info_data?: { id?: number; protocol?: string } };
  addr_info?: { family: string; local: string; prefixlen: number; scope?: string; broadcast?: string }[];
  stats64?: {
    rx?: { bytes?: number; packets?: number; errors?: number; dropped?: number };
    tx?: { bytes?: number; packets?: number; errors?: number; dropped?: number };
  };
}

const KNOWN_KINDS = new Set<HostInterfaceKind>(['bridge', 'vlan', 'veth', 'tun', 'bond', 'dummy']);

function kindOf(link: IpLink): HostInterfaceKind {
  const kind = link.linkinfo?.info_kind;
  if (kind && KNOWN_KINDS.has(kind as HostInterfaceKind)) return kind as HostInterfaceKind;
  if (link.link_type === 'loopback') return 'loopback';
  if (!kind && link.link_type === 'ether') return 'ethernet';
  return 'other';
}

/** Host interfaces from the JSON of `ip -j -s -d addr`. */
export function parseIpAddr(json: string): HostInterface[] {
  const links = JSON.parse(json) as IpLink[];
  const members = new Map<string, string[]>();
  for (const link of links) if (link.master) members.set(link.master, [...(members.get(link.master) ?? []), link.ifname]);
  return links.map((link) => {
    const kind = kindOf(link);
    const rx = link.stats64?.rx;
    const tx = link.stats64?.tx;
    const vlanId = link.linkinfo?.info_data?.id;
    return {
      name: link.ifname,
      index: link.ifindex,
      kind,
      adminUp: (link.flags ?? []).includes('UP'),
      state: link.operstate ?? 'UNKNOWN',
      mtu: link.mtu ?? 0,
      ...(link.address ? { mac: link.address } : {}),
      addresses: (link.addr_info ?? []).map((a) => ({
        family: a.family === 'inet6' ? ('inet6' as const) : ('inet' as const),
        address: a.local,
        prefix: a.prefixlen,
        scope: a.scope ?? 'global',
        ...(a.broadcast ? { broadcast: a.broadcast } : {}),
      })),
      ...(link.stats64
        ? {
            stats: {
              rxBytes: rx?.bytes ?? 0,
              rxPackets: rx?.packets ?? 0,
              rxErrors: rx?.errors ?? 0,
              rxDropped: rx?.dropped ?? 0,
              txBytes: tx?.bytes ?? 0,
              txPackets: tx?.packets ?? 0,
              txErrors: tx?.errors ?? 0,
              txDropped: tx?.dropped ?? 0,
            },
          }
        : {}),
      ...(link.master ? { master: link.master } : {}),
      ...(kind === 'bridge' ? { members: members.get(link.ifname) ?? [] } : {}),
      ...(kind === 'vlan' && vlanId !== undefined && link.link ? { vlan: { id: vlanId, parent: link.link } } : {}),
    };
  });
}

export async function listHostInterfaces(netns: string | undefined): Promise<HostInterface[]> {
  return parseIpAddr(await runInNetns(netns, 'ip', ['-j', '-s', '-d', 'addr', 'show']));
}

/** What a rollback restores of one interface. */
export interface InterfaceSnapshot {
  name: string;
  kind: HostInterfaceKind;
  adminUp: boolean;
  mtu: number;
  mac?: string;
  master?: string;
  addresses: Pick<HostInterfaceAddress, 'address' | 'prefix' | 'broadcast'>[];
  vlan?: { id: number; parent: string };
}

/** Kernel-made IPv6 link-local addresses come back by themselves; restoring them by hand would duplicate work. */
const managedAddress = (a: HostInterfaceAddress) => !(a.family === 'inet6' && a.scope === 'link');

export function snapshotOf(interfaces: readonly HostInterface[]): InterfaceSnapshot[] {
  return interfaces.map((i) => ({
    name: i.name,
    kind: i.kind,
    adminUp: i.adminUp,
    mtu: i.mtu,
    ...(i.mac ? { mac: i.mac } : {}),
    ...(i.master ? { master: i.master } : {}),
    addresses: i.addresses.filter(managedAddress).map((a) => ({ address: a.address, prefix: a.prefix, ...(a.broadcast ? { broadcast: a.broadcast } : {}) })),
    ...(i.vlan ? { vlan: i.vlan } : {}),
  }));
}

/** `a.b.c.d/nn` or `x::y/nnn` with a prefix that fits the family. */
export function parseAddressCidr(text: string): { address: string; prefix: number; family: 4 | 6 } {
  const slash = text.lastIndexOf('/');
  const address = slash > 0 ? text.slice(0, slash) : '';
  const prefixText = slash > 0 ? text.slice(slash + 1) : '';
  const family = isIP(address);
  const prefix = /^[0-9]{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (family === 0 || !Number.isInteger(prefix) || prefix > (family === 4 ? 32 : 128)) {
    throw new VirtError('INVALID_ARG', `invalid address ${JSON.stringify(text)}: expected address/prefix`);
  }
  return { address, prefix, family: family as 4 | 6 };
}

const keyOf = (a: { address: string; prefix: number }) => `${a.address}/${a.prefix}`;

function ipFailure(error: unknown, what: string): VirtError {
  const message = error instanceof Error ? error.message : String(error);
  if (/Unknown device type|not supported/i.test(message)) return new VirtError('OPERATION_UNSUPPORTED', `${what}: the kernel does not support it (${message})`, { cause: error });
  return VirtError.is(error) ? new VirtError(error.code, `${what}: ${message}`, { cause: error }) : new VirtError('OPERATION_FAILED', `${what}: ${message}`, { cause: error });
}

async function ip(netns: string | undefined, what: string, args: string[]): Promise<void> {
  try {
    await runInNetns(netns, 'ip', args);
  } catch (error) {
    throw ipFailure(error, what);
  }
}

function find(current: readonly HostInterface[], name: string): HostInterface {
  const found = current.find((i) => i.name === name);
  if (!found) throw new VirtError('INVALID_ARG', `no host interface named ${name}`);
  return found;
}

/** Checks a change against the current interfaces before anything runs, so a bad request changes nothing. */
export function checkChange(current: readonly HostInterface[], change: HostInterfaceChange): void {
  switch (change.action) {
    case 'set': {
      find(current, change.name);
      if (change.master) {
        if (find(current, change.master).kind !== 'bridge') throw new VirtError('INVALID_ARG', `${change.master} is not a bridge`);
        if (change.master === change.name) throw new VirtError('INVALID_ARG', 'an interface cannot be its own master');
      }
      return;
    }
    case 'add-address':
    case 'remove-address': {
      const target = find(current, change.name);
      const parsed = parseAddressCidr(change.address);
      const present = target.addresses.some((a) => a.address === parsed.address && a.prefix === parsed.prefix);
      if (change.action === 'add-address' && present) throw new VirtError('OPERATION_INVALID', `${change.name} already has ${change.address}`);
      if (change.action === 'remove-address' && !present) throw new VirtError('OPERATION_INVALID', `${change.name} has no address ${change.address}`);
      return;
    }
    case 'create-bridge':
    case 'create-vlan': {
      if (current.some((i) => i.name === change.name)) throw new VirtError('OPERATION_INVALID', `interface ${change.name} already exists`);
      if (change.action === 'create-vlan') find(current, change.parent);
      return;
    }
    case 'delete': {
      const target = find(current, change.name);
      if (target.kind !== 'bridge' && target.kind !== 'vlan') throw new VirtError('OPERATION_INVALID', `only bridges and VLANs can be deleted; ${change.name} is ${target.kind}`);
      return;
    }
  }
}

/** Applies one checked change live; returns the name of an interface it created, if any. */
export async function applyChange(netns: string | undefined, change: HostInterfaceChange): Promise<string | undefined> {
  const what = `${change.action} ${change.name}`;
  switch (change.action) {
    case 'set':
      if (change.master !== undefined) await ip(netns, what, ['link', 'set', 'dev', change.name, ...(change.master === null ? ['nomaster'] : ['master', change.master])]);
      if (change.mtu !== undefined) await ip(netns, what, ['link', 'set', 'dev', change.name, 'mtu', String(change.mtu)]);
      if (change.up !== undefined) await ip(netns, what, ['link', 'set', 'dev', change.name, change.up ? 'up' : 'down']);
      return undefined;
    case 'add-address':
      await ip(netns, what, ['addr', 'add', change.address, 'dev', change.name]);
      return undefined;
    case 'remove-address':
      await ip(netns, what, ['addr', 'del', change.address, 'dev', change.name]);
      return undefined;
    case 'create-bridge':
    case 'create-vlan': {
      const args =
        change.action === 'create-bridge'
          ? ['link', 'add', 'name', change.name, 'type', 'bridge']
          : ['link', 'add', 'link', change.parent, 'name', change.name, 'type', 'vlan', 'id', String(change.vlanId)];
      await ip(netns, what, args);
      try {
        if (change.mtu !== undefined) await ip(netns, what, ['link', 'set', 'dev', change.name, 'mtu', String(change.mtu)]);
        if (change.up) await ip(netns, what, ['link', 'set', 'dev', change.name, 'up']);
      } catch (error) {
        await runInNetns(netns, 'ip', ['link', 'del', 'dev', change.name]).catch(() => undefined);
        throw error;
      }
      return change.name;
    }
    case 'delete':
      await ip(netns, what, ['link', 'del', 'dev', change.name]);
      return undefined;
  }
}

async function recreate(netns: string | undefined, link: InterfaceSnapshot): Promise<void> {
  if (link.kind === 'bridge') await ip(netns, `recreate ${link.name}`, ['link', 'add', 'name', link.name, 'type', 'bridge']);
  else if (link.kind === 'vlan' && link.vlan) await ip(netns, `recreate ${link.name}`, ['link', 'add', 'link', link.vlan.parent, 'name', link.name, 'type', 'vlan', 'id', String(link.vlan.id)]);
  else return;
  if (link.mac) await ip(netns, `restore ${link.name} address`, ['link', 'set', 'dev', link.name, 'address', link.mac]);
}

/**
 * Brings the namespace back to `snapshot`: deletes the links the transaction created, recreates deleted bridges and
 * VLANs, then restores masters, MTUs, addresses and up/down. Links nobody listed (made meanwhile by others) stay.
 */
export async function restoreSnapshot(netns: string | undefined, snapshot: readonly InterfaceSnapshot[], created: readonly string[]): Promise<string[]> {
  const problems: string[] = [];
  const attempt = async (step: () => Promise<void>) => {
    try {
      await step();
    } catch (error) {
      problems.push((error as Error).message);
    }
  };
  const wanted = new Map(snapshot.map((link) => [link.name, link]));
  let current = await listHostInterfaces(netns);
  for (const name of created) {
    if (!wanted.has(name) && current.some((i) => i.name === name)) await attempt(() => ip(netns, `delete ${name}`, ['link', 'del', 'dev', name]));
  }
  const missing = snapshot.filter((link) => !current.some((i) => i.name === link.name));
  // bridges first: a VLAN may sit on a bridge
  for (const link of [...missing.filter((l) => l.kind === 'bridge'), ...missing.filter((l) => l.kind !== 'bridge')]) await attempt(() => recreate(netns, link));
  current = await listHostInterfaces(netns);
  for (const link of snapshot) {
    const now = current.find((i) => i.name === link.name);
    if (!now) {
      problems.push(`cannot recreate ${link.name} (${link.kind})`);
      continue;
    }
    if (now.master !== link.master) {
      await attempt(() => ip(netns, `restore ${link.name} master`, ['link', 'set', 'dev', link.name, ...(link.master ? ['master', link.master] : ['nomaster'])]));
    }
    if (now.mtu !== link.mtu) await attempt(() => ip(netns, `restore ${link.name} mtu`, ['link', 'set', 'dev', link.name, 'mtu', String(link.mtu)]));
  }
  // an MTU below 1280 drops IPv6 addresses: read again after the MTUs are back
  current = await listHostInterfaces(netns);
  for (const link of snapshot) {
    const now = current.find((i) => i.name === link.name);
    if (!now) continue;
    const want = new Set(link.addresses.map(keyOf));
    const have = now.addresses.filter(managedAddress);
    for (const extra of have.filter((a) => !want.has(keyOf(a)))) await attempt(() => ip(netns, `restore ${link.name} addresses`, ['addr', 'del', keyOf(extra), 'dev', link.name]));
    const haveKeys = new Set(have.map(keyOf));
    for (const lost of link.addresses.filter((a) => !haveKeys.has(keyOf(a)))) {
      await attempt(() => ip(netns, `restore ${link.name} addresses`, ['addr', 'add', keyOf(lost), ...(lost.broadcast ? ['broadcast', lost.broadcast] : []), 'dev', link.name]));
    }
    if (now.adminUp !== link.adminUp) await attempt(() => ip(netns, `restore ${link.name} state`, ['link', 'set', 'dev', link.name, link.adminUp ? 'up' : 'down']));
  }
  return problems;
}

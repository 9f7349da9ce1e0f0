import { VirtError, type DomainConfig, type DomainStats } from '@virtbus/api-contract';
import type { DomainRuntime, NetworkResolver } from '../driver.js';
import { runInNetns } from '../util/netns.js';
import { macFor } from './command-line.js';

/** A tap-backed NIC of a running domain: what the firewall needs to find its traffic. */
export interface TapNic {
  index: number;
  mac: string;
  tap: string;
  bridge: string;
  network?: string;
}

/** Host-side tap name: unique per domain and NIC, within the 15-character limit. */
export function tapName(uuid: string, index: number): string {
  return `vb${uuid.replace(/-/g, '').slice(0, 8).toLowerCase()}n${index}`;
}

/** The tap NICs of a config (`network` and `bridge` types), resolved to their bridges. */
export function planTapNics(config: DomainConfig, resolver: NetworkResolver | undefined): TapNic[] {
  const plans: TapNic[] = [];
  config.nics.forEach((nic, index) => {
    if (nic.type !== 'network' && nic.type !== 'bridge') return;
    if (!resolver) throw new VirtError('OPERATION_UNSUPPORTED', `NIC ${index} of ${config.name}: this agent manages no networks`);
    const attachment = resolver.resolveNic(nic);
    plans.push({ index, mac: nic.mac ?? macFor(config.uuid, index), tap: tapName(config.uuid, index), bridge: attachment.bridge, ...(attachment.network ? { network: attachment.network } : {}) });
  });
  return plans;
}

/** QEMU created the taps (-netdev tap,ifname=…); put them on their bridges and bring them up before the guest runs. */
export async function attachTaps(netns: string | undefined, nics: readonly TapNic[]): Promise<void> {
  for (const nic of nics) await runInNetns(netns, 'ip', ['link', 'set', 'dev', nic.tap, 'master', nic.bridge, 'up']);
}

/** The tap NICs and namespace recorded in a QEMU domain's runtime blob (for the firewall and stats). */
export function runningTapNics(runtime: DomainRuntime | undefined): { netns?: string; nics: TapNic[] } {
  const nics = Array.isArray(runtime?.nics) ? (runtime.nics as TapNic[]).filter((nic) => typeof nic?.tap === 'string' && typeof nic.bridge === 'string') : [];
  const netns = typeof runtime?.netns === 'string' ? runtime.netns : undefined;
  return { ...(netns ? { netns } : {}), nics };
}

interface LinkJson {
  ifname: string;
  stats64?: { rx: Record<string, number>; tx: Record<string, number> };
}

/** Traffic counters of the taps, read with `ip -s` inside the namespace (/sys shows only the agent's namespace). */
export async function tapStats(netns: string | undefined, nics: readonly TapNic[]): Promise<NonNullable<DomainStats['net']>> {
  if (nics.length === 0) return [];
  const links = JSON.parse((await runInNetns(netns, 'ip', ['-j', '-s', '-s', 'link', 'show'])) || '[]') as LinkJson[];
  return nics.flatMap((nic) => {
    const stats = links.find((link) => link.ifname === nic.tap)?.stats64;
    if (!stats) return [];
    // host view of the tap, as libvirt's domifstat reports it (rx = bytes the guest sent)
    return [
      {
        name: nic.tap,
        rxBytes: stats.rx.bytes ?? 0,
        rxPackets: stats.rx.packets ?? 0,
        rxErrors: stats.rx.errors ?? 0,
        rxDrops: stats.rx.dropped ?? 0,
        txBytes: stats.tx.bytes ?? 0,
        txPackets: stats.tx.packets ?? 0,
        txErrors: stats.tx.errors ?? 0,
        txDrops: stats.tx.dropped ?? 0,
      },
    ];
  });
}

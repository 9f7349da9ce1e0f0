import { VirtError, type DomainConfig, type DomainNic, type DomainStats } from '@virtbus/api-contract';
import type { DomainRuntime, NetworkResolver, NicAttachment } from '../driver.js';
import type { Qmp } from './qmp/index.js';
import { runInNetns } from '../util/netns.js';
import { macFor } from './command-line.js';

/** A tap-backed NIC of a running domain: what the firewall needs to find its traffic. */
export interface TapNic {
  index: number;
  mac: string;
  tap: string;
  bridge: string;
  network?: string;
  /** QEMU ids; absent for NICs from the command line (nic<index>/net<index>). */
  deviceId?: string;
  netdevId?: string;
}

const NIC_DEVICES: Record<NonNullable<DomainNic['model']>, 'virtio-net-pci' | 'e1000' | 'rtl8139'> = { virtio: 'virtio-net-pci', e1000: 'e1000', rtl8139: 'rtl8139' };

/** QEMU device and netdev ids of a NIC: command-line NICs by index, hotplugged ones by MAC. */
export function qemuNicIds(nic: Pick<TapNic, 'index' | 'deviceId' | 'netdevId'>): { deviceId: string; netdevId: string } {
  return { deviceId: nic.deviceId ?? `nic${nic.index}`, netdevId: nic.netdevId ?? `net${nic.index}` };
}

/** Plugs a tap NIC into a running QEMU: the tap (in the namespace) on its bridge, then netdev_add + device_add. */
export async function hotplugTapNic(qmp: Qmp, netns: string | undefined, uuid: string, nic: DomainNic & { mac: string }, index: number, attachment: NicAttachment): Promise<TapNic> {
  const suffix = nic.mac.replace(/:/g, '').slice(6);
  const plan: TapNic = {
    index,
    mac: nic.mac,
    tap: `vb${uuid.replace(/-/g, '').slice(0, 6).toLowerCase()}h${suffix}`,
    bridge: attachment.bridge,
    ...(attachment.network ? { network: attachment.network } : {}),
    deviceId: `hnic${suffix}`,
    netdevId: `hnet${suffix}`,
  };
  const ids = qemuNicIds(plan);
  await qmp.net.netdevAdd({ type: 'tap', id: ids.netdevId, ifname: plan.tap, script: 'no', downscript: 'no' });
  try {
    await attachTaps(netns, [plan]);
    await qmp.misc.deviceAdd({ driver: NIC_DEVICES[nic.model ?? 'virtio'], id: ids.deviceId, netdev: ids.netdevId, mac: nic.mac });
  } catch (error) {
    await qmp.net.netdevDel(ids.netdevId).catch(() => undefined);
    throw error;
  }
  return plan;
}

/** device_del, wait for DEVICE_DELETED (the guest lets go), then netdev_del, which closes the tap. */
export async function unplugNic(qmp: Qmp, ids: { deviceId: string; netdevId: string }, timeoutMs: number): Promise<void> {
  const timedOut = () => new VirtError('OPERATION_TIMEOUT', `the guest did not release NIC ${ids.deviceId} within ${timeoutMs} ms`);
  const deleted = qmp.nextEvent('DEVICE_DELETED', (data) => data.device === ids.deviceId, timeoutMs, timedOut);
  deleted.promise.catch(() => undefined);
  try {
    await qmp.misc.deviceDel(ids.deviceId);
  } catch (error) {
    deleted.stop();
    throw error;
  }
  await deleted.promise;
  await qmp.net.netdevDel(ids.netdevId);
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

import type { NetworkManager } from '../networks/manager.js';

/** The static DHCP host addresses a network gives this MAC: what IP anti-spoofing lets the NIC send from. */
export function staticAddressesOf(networks: NetworkManager, network: string, mac: string): string[] {
  try {
    const view = networks.get(network);
    const hosts = [...(view.ipv4?.dhcp?.hosts ?? []), ...(view.ipv6?.dhcp?.hosts ?? [])];
    return hosts.filter((host) => host.mac.toLowerCase() === mac.toLowerCase()).map((host) => host.ip);
  } catch {
    return [];
  }
}

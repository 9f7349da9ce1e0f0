import { join } from 'node:path';
import { removeAtomicTemps } from '@virtbus/drivers';

/**
 * The agent's layout under --state-dir, in one place: every store and manager joins its path here. The layout is what a
 * restarted or upgraded agent reads back, so a name here never changes.
 */
export const StateDir = {
  /** One `<uuid>.json` per domain definition and state. */
  domains: (root: string) => join(root, 'domains'),
  /** `domains.json`: every domain record in one file, written at a clean stop and removed before the next domain write. */
  cleanStop: (root: string) => join(root, 'clean-stop'),
  /** What a driver keeps per domain (QEMU sockets and logs, LXC configs, dnsmasq files of the network driver). */
  driver: (root: string, name: string) => join(root, 'drivers', name),
  /** UEFI variable stores, `<uuid>_VARS.fd` per efi domain (copied from the firmware's template at first start). */
  nvram: (root: string) => join(root, 'nvram'),
  /** One record per migration in flight. */
  migrations: (root: string) => join(root, 'migrations'),
  /** One `<uuid>.json` snapshot tree per domain. */
  snapshots: (root: string) => join(root, 'snapshots'),
  /** Managed-save images, `<uuid>.save`. */
  managedSave: (root: string) => join(root, 'managed-save'),
  /** The host interface change in progress (begin/commit/rollback). */
  interfacesTransaction: (root: string) => join(root, 'interfaces', 'transaction.json'),
  /** Emulated TPM state, a `<uuid>/` directory per domain with a TPM (written by its swtpm, removed by undefine). */
  tpm: (root: string) => join(root, 'tpm'),
  /** Firewall rule sets, one `<name>.json` each. */
  firewallRulesets: (root: string) => join(root, 'firewall', 'rulesets'),
  /** Which devices use which firewall rule set. */
  firewallBindings: (root: string) => join(root, 'firewall', 'bindings.json'),
  /** One `<name>.json` per storage pool definition. */
  storagePools: (root: string) => join(root, 'storage-pools'),
  /** Where a dir pool defined without a target keeps its volumes (the node's `default` pool among them). */
  poolTarget: (root: string, pool: string) => join(root, 'pools', pool),
  /** One `<name>.json` per virtual network definition. */
  networks: (root: string) => join(root, 'networks'),
  /** The event log (segments, acked mark, last state per domain) that feeds VIRT_EVENTS. */
  events: (root: string) => join(root, 'events'),
  /** One answer per Idempotency-Key. */
  idempotency: (root: string) => join(root, 'idempotency'),
} as const;

/** Where the agent and its drivers write atomically; pool volumes (user data) and managed-save images are not among them. */
export function atomicWriteDirs(root: string): string[] {
  return [
    StateDir.domains(root),
    StateDir.cleanStop(root),
    join(root, 'drivers'),
    StateDir.migrations(root),
    StateDir.nvram(root),
    StateDir.snapshots(root),
    join(root, 'interfaces'),
    join(root, 'firewall'),
    StateDir.storagePools(root),
    StateDir.networks(root),
    StateDir.events(root),
    StateDir.idempotency(root),
  ];
}

/** Removes the temp files of atomic writes that a crash left behind (run at start, before anything writes); returns their paths. */
export async function removeStaleTemps(root: string): Promise<string[]> {
  const removed: string[] = [];
  for (const dir of atomicWriteDirs(root)) removed.push(...(await removeAtomicTemps(dir)));
  return removed;
}

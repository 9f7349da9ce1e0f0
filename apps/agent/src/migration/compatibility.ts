import { access } from 'node:fs/promises';
import { compareCpu, VirtError, type PeerMigrationPrepare } from '@virtbus/api-contract';
import { diskTargets, type HypervisorDriver, type NetworkResolver } from '@virtbus/drivers';
import { readHostCpu } from '../node-info.js';
import type { VolumeResolver } from '../domains/volumes.js';
import type { DomainManager } from '../domains/manager.js';

export interface CompatibilityInput {
  node: string;
  domains: DomainManager;
  prepare: PeerMigrationPrepare;
  hasTls: boolean;
  networks?: NetworkResolver;
  volumes?: VolumeResolver;
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/** `host` passes the source host's CPU through: this host needs every flag of it; a named model must be usable here (domcapabilities). */
async function checkCpu(prepare: PeerMigrationPrepare, known: string[], driver: HypervisorDriver, refuse: (reason: string) => never): Promise<void> {
  const { config, cpu } = prepare;
  // a source that predates the CPU in the request runs kvm domains on qemu64 or host, tcg ones on max
  const model = cpu?.model ?? (config.driver === 'kvm' ? 'qemu64' : 'max');
  if (!known.includes(model)) refuse(`CPU model ${model} is not supported by its QEMU`);
  if (!cpu) return;
  if (model === 'host') {
    const compared = compareCpu(await readHostCpu(), cpu.host);
    if (compared.result === 'incompatible') refuse(`its CPU lacks what the source passes through with -cpu host (${cpu.host.vendor}${compared.missingFeatures.length ? `; missing ${compared.missingFeatures.slice(0, 20).join(' ')}` : ''})`);
    return;
  }
  if (model === 'max' || !driver.domainCapabilities) return;
  const capabilities = await driver.domainCapabilities.describe(config.driver, config.os.machine);
  const entry = capabilities.cpuModels.find((candidate) => candidate.name === model);
  if (entry && !entry.usable) refuse(`CPU model ${model} cannot run on its host (missing ${(entry.unavailableFeatures ?? []).slice(0, 20).join(' ')})`);
}

/**
 * Whether this node can take the domain as the source runs it: driver, machine type, CPU model, disks (present for
 * shared storage, absent for a storage copy) and TLS. Every refusal is MIGRATION_INCOMPATIBLE with the reason.
 */
export async function checkCompatibility({ node, domains, prepare, hasTls, networks, volumes }: CompatibilityInput): Promise<void> {
  const { config, options } = prepare;
  const refuse = (reason: string, cause?: unknown): never => {
    throw new VirtError('MIGRATION_INCOMPATIBLE', `node ${node} cannot take domain ${config.name}: ${reason}`, cause ? { cause } : undefined);
  };
  let driver;
  try {
    driver = domains.driverFor(config);
    driver.validate(config);
  } catch (error) {
    return refuse((error as Error).message, error);
  }
  for (const [index, nic] of config.nics.entries()) {
    if (nic.type !== 'network' && nic.type !== 'bridge') continue;
    if (!networks) return refuse(`NIC ${index} needs a ${nic.type}, and the node manages no networks`);
    try {
      networks.resolveNic(nic);
    } catch (error) {
      refuse(`NIC ${index}: ${(error as Error).message}`, error);
    }
  }
  if (options.offline) return;
  if (!driver.migration) return refuse(`the ${driver.name} driver cannot receive live migrations`);
  if (options.tls && !hasTls) refuse('it has no migration TLS certificates');
  const facts = await driver.migration.hostFacts();
  const machine = config.os.machine ?? 'pc';
  if (!facts.machines.includes(machine)) refuse(`machine type ${machine} is not supported by its QEMU`);
  await checkCpu(prepare, facts.cpuModels, driver, refuse);
  const copy = (options.copyStorage ?? 'none') === 'all';
  const targets = diskTargets(config.disks);
  for (const [index, disk] of config.disks.entries()) {
    // a read-only volume the source sent inside prepare (a cloud-init seed) is made here like a copied one
    const source = disk.source;
    const carried = 'pool' in source && prepare.files?.some((file) => file.kind === 'volume' && file.pool === source.pool && file.volume === source.volume) === true;
    const copied = copy && (!disk.readonly || carried);
    if ('pool' in disk.source) {
      const { pool, volume } = disk.source;
      if (!volumes) refuse(`disk ${targets[index]} is a volume of pool ${pool}, and the node has no storage pools`);
      const found = await volumes!.resolveVolume(pool, volume).then(
        () => true,
        (error: unknown) => (VirtError.is(error, 'NO_STORAGE_VOL') ? false : refuse(`disk ${targets[index]}: ${(error as Error).message}`, error)),
      );
      if (copied && found) refuse(`disk ${targets[index]}: volume ${volume} already exists in pool ${pool} (a storage copy makes it anew; map the pool with poolMap)`);
      if (!copied && !found) refuse(`disk ${targets[index]}: pool ${pool} has no volume ${volume} there (shared storage expected; use copyStorage all)`);
      if (copied && !carried && prepare.diskSizes[targets[index]!] === undefined) refuse(`disk ${targets[index]}: the source sent no size`);
      continue;
    }
    const path = disk.source.path;
    const present = await exists(path);
    if (copied && present) refuse(`disk ${targets[index]}: ${path} already exists there (a storage copy writes a new file; choose diskPaths)`);
    if (!copied && !present) refuse(`disk ${targets[index]}: ${path} does not exist there (shared storage expected; use copyStorage all)`);
    if (copied && prepare.diskSizes[targets[index]!] === undefined) refuse(`disk ${targets[index]}: the source sent no size`);
  }
}

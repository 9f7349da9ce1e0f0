import { randomUUID } from 'node:crypto';
import { VirtError, isObjectName, type Domain, type DomainDisk, type DomainFromImage } from '@virtbus/api-contract';
import { buildNoCloudIso } from '@virtbus/drivers';
import type { StorageManager } from '../storage/manager.js';
import { withTargets } from './disk-ops.js';
import type { DomainManager } from './manager.js';

// libvirt: the agent resolves both volumes to paths before each start, and libvirt's QEMU opens them like the qemu driver's
const IMAGE_DRIVERS = new Set(['test', 'qemu', 'kvm', 'libvirt']);

/** Names of the volumes a domain from an image gets. */
export function provisionedVolumeNames(domain: string): { root: string; seed: string } {
  return { root: `${domain}-root.qcow2`, seed: `${domain}-cidata.iso` };
}

/**
 * Incus-style "create from image": a qcow2 overlay on the image volume (first virtio disk) and a cloud-init NoCloud
 * seed ISO (cdrom), then the definition. Volumes created before a failure are deleted again.
 */
export async function defineFromImage(request: DomainFromImage, storage: StorageManager, manager: DomainManager): Promise<Domain> {
  const { domain: post, image } = request;
  if (!IMAGE_DRIVERS.has(post.driver)) throw new VirtError('OPERATION_UNSUPPORTED', `${post.driver} domains cannot be created from a disk image`);
  const names = provisionedVolumeNames(post.name);
  if (!isObjectName(names.root) || !isObjectName(names.seed)) throw new VirtError('INVALID_ARG', `domain name ${post.name} is too long for its volume names`);
  if (manager.list().some((domain) => domain.name === post.name)) throw new VirtError('DOMAIN_EXISTS', `domain ${post.name} already exists`);
  const uuid = (post.uuid ?? randomUUID()).toLowerCase();
  const root: DomainDisk = { source: { pool: image.pool, volume: names.root }, format: 'qcow2', bus: 'virtio' };
  // IDE, not SATA: Debian's cloud kernel (genericcloud images) has no AHCI driver but has ata_piix (the pc machine's IDE).
  const cidata: DomainDisk = { source: { pool: image.pool, volume: names.seed }, device: 'cdrom', format: 'raw', bus: 'ide', readonly: true };
  // Two disks on one target fail here, before any volume exists; the targets are recorded, as libvirt does (domblklist).
  const disks = withTargets([root, ...(post.disks ?? []), cidata]);
  const base = await storage.getVolume(image.pool, image.volume);
  const created: string[] = [];
  try {
    await storage.createVolume(image.pool, { name: names.root, format: 'qcow2', capacity: request.rootSize ?? base.capacityBytes, backing: { volume: image.volume } });
    created.push(names.root);
    const seed = request.cloudInit ?? {};
    const iso = await buildNoCloudIso({
      'user-data': seed.userData ?? '#cloud-config\n',
      'meta-data': seed.metaData ?? `instance-id: ${uuid}\nlocal-hostname: ${post.name}\n`,
      ...(seed.networkConfig !== undefined ? { 'network-config': seed.networkConfig } : {}),
    });
    await storage.writeVolume(image.pool, names.seed, iso);
    created.push(names.seed);
    return await manager.define({ ...post, uuid, disks });
  } catch (error) {
    for (const name of created.reverse()) await storage.deleteVolume(image.pool, name).catch(() => undefined);
    throw error;
  }
}

import Type, { type Static } from 'typebox';
import { DiskSource, DiskTarget, Domain, DomainDisk } from './domain.js';
import { DomainId } from './names.js';
import { Access } from './subjects.js';

/** libvirt's --live / --config: neither means the running domain when active, else the definition. */
const scopeFields = {
  live: Type.Optional(Type.Boolean({ description: 'Change the running domain' })),
  config: Type.Optional(Type.Boolean({ description: 'Change the persistent definition (applies at next start)' })),
};

export const DiskAttach = Type.Object(
  { disk: DomainDisk, ...scopeFields },
  { additionalProperties: false, title: 'DiskAttach', description: 'Hotplug a disk (virtio on a running QEMU domain) and/or add it to the definition' },
);
export type DiskAttach = Static<typeof DiskAttach>;

export const DiskDetach = Type.Object(
  {
    ...scopeFields,
    timeout: Type.Optional(Type.Integer({ minimum: 1, maximum: 600, description: 'Seconds to wait for the guest to release the disk (default 10)' })),
  },
  { additionalProperties: false, title: 'DiskDetach' },
);
export type DiskDetach = Static<typeof DiskDetach>;

export const MediaChange = Type.Object(
  { source: Type.Optional(DiskSource), ...scopeFields },
  { additionalProperties: false, title: 'MediaChange', description: 'Insert media into a cdrom drive; no source ejects it' },
);
export type MediaChange = Static<typeof MediaChange>;

/** Default wait for DEVICE_DELETED after a disk unplug request. */
export const DEFAULT_DETACH_TIMEOUT_S = 10;

/** Device operations of the agent API, merged into `Operations` (api.ts). */
export const DeviceOperations = {
  'domain.disk.attach': {
    access: Access.ReadWrite,
    request: Type.Object({ id: DomainId, attach: DiskAttach }, { additionalProperties: false }),
    response: Domain,
    summary: 'Attach a disk: hotplug (live) and/or add to the definition (config)',
  },
  'domain.disk.detach': {
    access: Access.ReadWrite,
    request: Type.Object({ id: DomainId, target: DiskTarget, detach: DiskDetach }, { additionalProperties: false }),
    response: Domain,
    summary: 'Detach a disk: unplug (live, waits for the guest) and/or remove from the definition (config)',
  },
  'domain.media.change': {
    access: Access.ReadWrite,
    request: Type.Object({ id: DomainId, target: DiskTarget, change: MediaChange }, { additionalProperties: false }),
    response: Domain,
    summary: 'Change or eject the media of a cdrom drive',
  },
} as const;

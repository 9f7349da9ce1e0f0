import Type, { type Static } from 'typebox';
import { DiskSource, DiskTarget, Domain, DomainDisk } from './domain.js';
import { DomainId } from './names.js';
import { Access } from './subjects.js';
import { HttpTags, ObjectErrors, PermissionClass, type OperationSpec } from './operation-spec.js';

/** libvirt's --live / --config: neither means the running domain when active, else the definition. */
export const scopeFields = {
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
  // disks and media change what the guest can read and write, like a definition change
  'domain.disk.attach': {
    access: Access.ReadWrite,
    request: Type.Object({ id: DomainId, attach: DiskAttach }, { additionalProperties: false }),
    response: Domain,
    summary: 'Attach a disk: hotplug it (live) and/or add it to the definition (config)',
    permission: PermissionClass.Define,
    errors: ObjectErrors.disk,
    http: { method: 'POST', path: '/domains/:id/disks', operationId: 'attachDisk', tag: HttpTags.Domains, body: 'attach' },
  },
  'domain.disk.detach': {
    access: Access.ReadWrite,
    request: Type.Object({ id: DomainId, target: DiskTarget, detach: DiskDetach }, { additionalProperties: false }),
    response: Domain,
    summary: 'Detach a disk: unplug it (live, waits for the guest) and/or remove it from the definition (config)',
    permission: PermissionClass.Define,
    errors: ObjectErrors.disk,
    http: { method: 'DELETE', path: '/domains/:id/disks/:target', operationId: 'detachDisk', tag: HttpTags.Domains, query: 'detach' },
    wait: { seconds: DEFAULT_DETACH_TIMEOUT_S, field: 'detach.timeout', marginSeconds: 5 },
  },
  'domain.media.change': {
    access: Access.ReadWrite,
    request: Type.Object({ id: DomainId, target: DiskTarget, change: MediaChange }, { additionalProperties: false }),
    response: Domain,
    summary: 'Insert media into a cdrom drive, or eject it (no source)',
    permission: PermissionClass.Define,
    errors: ObjectErrors.disk,
    http: { method: 'PUT', path: '/domains/:id/disks/:target/media', operationId: 'changeMedia', tag: HttpTags.Domains, body: 'change' },
  },
} as const satisfies Record<string, OperationSpec>;

import Type, { type Static } from 'typebox';
import { eventHeaderFields } from './event-header.js';
import { Domain, DomainState } from './domain.js';
import { DomainId, ObjectName, Uuid } from './names.js';
import { Access } from './subjects.js';
import { HttpTags, ObjectErrors, PermissionClass, type OperationSpec } from './operation-spec.js';
import { PageRequestFields, PageResponseFields } from './paging.js';

export const SnapshotKinds = ['internal', 'external'] as const;
export const SnapshotKind = Type.Enum([...SnapshotKinds], {
  description: '`internal`: qcow2 internal snapshot (with RAM when the domain runs); `external`: disk-only, a new qcow2 overlay on each disk',
});
export type SnapshotKind = Static<typeof SnapshotKind>;

export const SnapshotDisk = Type.Object(
  {
    target: Type.String({ description: 'Guest device name, e.g. vda' }),
    file: Type.String({ description: 'internal: the image holding the snapshot; external: the image frozen at the snapshot (backing of later overlays)' }),
    overlay: Type.Optional(Type.String({ description: 'external: the overlay created by the snapshot' })),
  },
  { additionalProperties: false },
);
export type SnapshotDisk = Static<typeof SnapshotDisk>;

export const DomainSnapshot = Type.Object(
  {
    name: ObjectName,
    domain: Uuid,
    kind: SnapshotKind,
    description: Type.Optional(Type.String({ maxLength: 1024 })),
    state: DomainState,
    memory: Type.Boolean({ description: 'Whether the snapshot holds RAM and device state (a revert resumes the guest where it was)' }),
    parent: Type.Optional(ObjectName),
    children: Type.Array(ObjectName),
    current: Type.Boolean({ description: 'The snapshot the domain last was at (created or reverted to)' }),
    createdAt: Type.String({ format: 'date-time' }),
    disks: Type.Array(SnapshotDisk),
  },
  { additionalProperties: false, title: 'DomainSnapshot' },
);
export type DomainSnapshot = Static<typeof DomainSnapshot>;

export const DomainSnapshotList = Type.Object(
  {
    snapshots: Type.Array(DomainSnapshot, { description: 'Oldest first (creation time, then name), so parents before their children' }),
    current: Type.Optional(ObjectName),
    ...PageResponseFields,
  },
  { additionalProperties: false, title: 'DomainSnapshotList' },
);
export const DomainSnapshotListRequest = Type.Object({ id: DomainId, ...PageRequestFields }, { additionalProperties: false, title: 'DomainSnapshotListRequest' });
export type DomainSnapshotList = Static<typeof DomainSnapshotList>;

export const DomainSnapshotsPost = Type.Object(
  {
    name: Type.Optional(ObjectName),
    kind: Type.Optional(Type.Enum([...SnapshotKinds], { default: 'internal' })),
    description: Type.Optional(Type.String({ maxLength: 1024 })),
    quiesce: Type.Optional(Type.Boolean({ description: "Freeze the guest's file systems through its guest agent while the snapshot is taken (libvirt --quiesce)" })),
  },
  { additionalProperties: false, title: 'DomainSnapshotsPost' },
);
export type DomainSnapshotsPost = Static<typeof DomainSnapshotsPost>;

export const SnapshotDeleteModes = ['single', 'children', 'children-only'] as const;
export const DomainSnapshotDelete = Type.Object(
  {
    mode: Type.Optional(
      Type.Enum([...SnapshotDeleteModes], { default: 'single', description: 'single: this one (children move to its parent); children: it and its descendants; children-only: only descendants' }),
    ),
    metadataOnly: Type.Optional(Type.Boolean({ description: 'Forget the snapshots without touching any image (libvirt --metadata)' })),
  },
  { additionalProperties: false, title: 'DomainSnapshotDelete' },
);
export type DomainSnapshotDelete = Static<typeof DomainSnapshotDelete>;

export const DomainSnapshotsDeleted = Type.Object({ deleted: Type.Array(ObjectName) }, { additionalProperties: false, title: 'DomainSnapshotsDeleted' });

/** A save image lives in a storage pool as a file. */
export const DomainSaveTarget = Type.Object(
  { pool: ObjectName, volume: ObjectName },
  { additionalProperties: false, title: 'DomainSaveTarget', description: 'The file (volume name) in a dir storage pool holding the saved memory state' },
);
export type DomainSaveTarget = Static<typeof DomainSaveTarget>;

export const DomainRestorePost = Type.Object(
  {
    pool: ObjectName,
    volume: ObjectName,
    paused: Type.Optional(Type.Boolean({ description: 'Leave the restored guest paused' })),
  },
  { additionalProperties: false, title: 'DomainRestorePost' },
);
export type DomainRestorePost = Static<typeof DomainRestorePost>;

export const ManagedSaveInfo = Type.Object(
  { domain: Uuid, present: Type.Boolean(), sizeBytes: Type.Optional(Type.Integer({ minimum: 0 })), createdAt: Type.Optional(Type.String({ format: 'date-time' })) },
  { additionalProperties: false, title: 'ManagedSaveInfo' },
);
export type ManagedSaveInfo = Static<typeof ManagedSaveInfo>;

/** Snapshot events (libvirt has none besides the domain's own lifecycle events). */
export const SnapshotEventTypes = ['CREATED', 'REVERTED', 'DELETED'] as const;
export const SnapshotEventType = Type.Enum([...SnapshotEventTypes]);
export type SnapshotEventType = Static<typeof SnapshotEventType>;

export const DomainSnapshotEvent = Type.Object(
  {
    ...eventHeaderFields('snapshot.lifecycle', 'Per-node sequence number shared with domain events'),
    domain: Type.String({ description: 'Domain name' }),
    snapshot: ObjectName,
    type: SnapshotEventType,
  },
  { additionalProperties: false, title: 'DomainSnapshotEvent' },
);
export type DomainSnapshotEvent = Static<typeof DomainSnapshotEvent>;

const SnapshotRef = Type.Object({ id: DomainId, snapshot: ObjectName }, { additionalProperties: false });
const DomainOnly = Type.Object({ id: DomainId }, { additionalProperties: false });

/** Snapshot and save/restore operations of the agent API, merged into `Operations` (api.ts). */
export const SnapshotOperations = {
  'domain.snapshot.list': {
    access: Access.ReadOnly,
    request: DomainSnapshotListRequest,
    response: DomainSnapshotList,
    summary: 'Snapshots of a domain oldest first (parents before children), with parent, children and current (paged with limit/continue)',
    permission: PermissionClass.Read,
    errors: ObjectErrors.domain,
    http: { method: 'GET', path: '/domains/:id/snapshots', operationId: 'listDomainSnapshots', tag: HttpTags.Domains, query: true },
  },
  'domain.snapshot.get': {
    access: Access.ReadOnly,
    request: SnapshotRef,
    response: DomainSnapshot,
    summary: 'One snapshot',
    permission: PermissionClass.Read,
    errors: ObjectErrors.snapshot,
    http: { method: 'GET', path: '/domains/:id/snapshots/:snapshot', operationId: 'getDomainSnapshot', tag: HttpTags.Domains },
  },
  'domain.snapshot.create': {
    access: Access.ReadWrite,
    request: Type.Object({ id: DomainId, snapshot: DomainSnapshotsPost }, { additionalProperties: false }),
    response: DomainSnapshot,
    summary: 'Take an internal (qcow2, with RAM while running) or external (overlay, disk-only) snapshot',
    permission: PermissionClass.Lifecycle,
    errors: ['NO_DOMAIN', 'OPERATION_INVALID', 'PAYLOAD_TOO_LARGE', 'OPERATION_UNSUPPORTED'],
    http: { method: 'POST', path: '/domains/:id/snapshots', operationId: 'createDomainSnapshot', tag: HttpTags.Domains, status: 201, body: 'snapshot' },
    wait: { seconds: 300 },
  },
  // these throw guest state away: admin only
  'domain.snapshot.revert': {
    access: Access.ReadWrite,
    request: SnapshotRef,
    response: Domain,
    summary: 'Return the domain to a snapshot; for an external one the overlays made after it are discarded',
    permission: PermissionClass.Define,
    errors: ObjectErrors.snapshot,
    http: { method: 'POST', path: '/domains/:id/snapshots/:snapshot/revert', operationId: 'revertDomainSnapshot', tag: HttpTags.Domains },
    wait: { seconds: 300 },
  },
  'domain.snapshot.delete': {
    access: Access.ReadWrite,
    request: Type.Object({ id: DomainId, snapshot: ObjectName, options: Type.Optional(DomainSnapshotDelete) }, { additionalProperties: false }),
    response: DomainSnapshotsDeleted,
    summary: 'Delete a snapshot (external ones are merged with commit), its children, or only the metadata',
    permission: PermissionClass.Define,
    errors: ObjectErrors.snapshot,
    http: { method: 'DELETE', path: '/domains/:id/snapshots/:snapshot', operationId: 'deleteDomainSnapshot', tag: HttpTags.Domains, query: 'options' },
    wait: { seconds: 300 },
  },
  'domain.save': {
    access: Access.ReadWrite,
    request: Type.Object({ id: DomainId, target: DomainSaveTarget }, { additionalProperties: false }),
    response: Domain,
    summary: "Save a running domain's memory state to a file in a dir pool and stop it (shutoff, reason saved)",
    permission: PermissionClass.Lifecycle,
    errors: ObjectErrors.saveFile,
    http: { method: 'POST', path: '/domains/:id/save', operationId: 'saveDomain', tag: HttpTags.Domains, body: 'target' },
    wait: { seconds: 300 },
  },
  'domain.restore': {
    access: Access.ReadWrite,
    request: DomainRestorePost,
    response: Domain,
    summary: 'Start a domain from a save file in a pool; the file names the domain',
    permission: PermissionClass.Lifecycle,
    errors: ObjectErrors.saveFile,
    http: { method: 'POST', path: '/restore', operationId: 'restoreDomain', tag: HttpTags.Domains, body: true },
    wait: { seconds: 300 },
  },
  'domain.managedsave.get': {
    access: Access.ReadOnly,
    request: DomainOnly,
    response: ManagedSaveInfo,
    summary: 'Whether the domain has a managed save image',
    permission: PermissionClass.Read,
    errors: ObjectErrors.domain,
    http: { method: 'GET', path: '/domains/:id/managed-save', operationId: 'getManagedSave', tag: HttpTags.Domains },
  },
  'domain.managedsave': {
    access: Access.ReadWrite,
    request: DomainOnly,
    response: Domain,
    summary: 'Save the domain to an image the agent keeps; the next plain start resumes from it',
    permission: PermissionClass.Lifecycle,
    errors: ObjectErrors.domain,
    http: { method: 'POST', path: '/domains/:id/managed-save', operationId: 'managedSaveDomain', tag: HttpTags.Domains },
    wait: { seconds: 300 },
  },
  'domain.managedsave.remove': {
    access: Access.ReadWrite,
    request: DomainOnly,
    response: ManagedSaveInfo,
    summary: 'Throw the managed save image away (the next start boots afresh)',
    permission: PermissionClass.Define,
    errors: ObjectErrors.domain,
    http: { method: 'DELETE', path: '/domains/:id/managed-save', operationId: 'removeManagedSave', tag: HttpTags.Domains },
  },
} as const satisfies Record<string, OperationSpec>;

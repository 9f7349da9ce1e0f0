import Type, { type Static } from 'typebox';
import { eventHeaderFields } from './event-header.js';
import { Access } from './subjects.js';
import { HttpTags, ObjectErrors, PermissionClass, type OperationSpec } from './operation-spec.js';
import { ErrorBody, VirtError } from './errors.js';
import { Count, HostPath, NodeName, ObjectName, Uuid } from './names.js';
import { MigrationProgress } from './migration.js';
import { namedListOperation, NamePageRequestFields, PageRequestFields, PageResponseFields } from './paging.js';

export const PoolTypes = ['dir', 'logical'] as const;
export const PoolType = Type.Enum([...PoolTypes], { description: 'Pool backend: `dir` (a directory) or `logical` (an LVM volume group)' });
export type PoolType = Static<typeof PoolType>;

export const PoolStates = ['inactive', 'building', 'running', 'degraded', 'inaccessible'] as const;
export const PoolState = Type.Enum([...PoolStates], { description: "libvirt's virStoragePoolState" });
export type PoolState = Static<typeof PoolState>;

export const VolumeFormats = ['qcow2', 'raw'] as const;
export const VolumeFormat = Type.Enum([...VolumeFormats]);
export type VolumeFormat = Static<typeof VolumeFormat>;

/** Sizes: bytes as an integer, or a string with libvirt's units (K/KiB = 1024, KB = 1000, … up to P). */
export const SIZE_PATTERN = '^[0-9]{1,16}(?:[KMGTP](?:i?B)?|B)?$';
export const SizeSpec = Type.Union(
  [Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }), Type.String({ pattern: SIZE_PATTERN, description: 'e.g. `512M`, `10G`, `1GiB`, `1GB`' })],
  { description: 'Size in bytes, or a string with a unit' },
);
export type SizeSpec = Static<typeof SizeSpec>;

const UNIT_POWER: Record<string, number> = { '': 0, B: 0, K: 1, M: 2, G: 3, T: 4, P: 5 };

/** Bytes from a SizeSpec; throws INVALID_ARG for anything malformed or beyond 2^53. */
export function parseSize(size: SizeSpec): number {
  if (typeof size === 'number') {
    if (!Number.isSafeInteger(size) || size < 0) throw new VirtError('INVALID_ARG', `invalid size ${size}`);
    return size;
  }
  const match = /^([0-9]{1,16})([KMGTP]?)(iB|B)?$/.exec(size);
  if (!match || (match[3] === 'iB' && !match[2])) throw new VirtError('INVALID_ARG', `invalid size ${JSON.stringify(size)}`);
  const [, digits, unit = '', suffix = ''] = match;
  const base = unit && suffix === 'B' ? 1000 : 1024;
  const bytes = Number(digits) * base ** (UNIT_POWER[unit] ?? 0);
  if (!Number.isSafeInteger(bytes)) throw new VirtError('INVALID_ARG', `size ${size} is too large`);
  return bytes;
}

export const StoragePoolsPost = Type.Object(
  {
    name: ObjectName,
    type: PoolType,
    target: Type.Optional(Type.String({ ...HostPath, description: 'dir: the directory (default <state-dir>/pools/<name>)' })),
    sourceDevices: Type.Optional(Type.Array(HostPath, { maxItems: 64, description: 'logical: block devices that make up the volume group' })),
    vgName: Type.Optional(Type.String({ ...ObjectName, description: 'logical: volume group name (default: the pool name)' })),
    autostart: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, title: 'StoragePoolsPost' },
);
export type StoragePoolsPost = Static<typeof StoragePoolsPost>;

export const StoragePoolPut = Type.Object({ autostart: Type.Optional(Type.Boolean()) }, { additionalProperties: false, title: 'StoragePoolPut' });
export type StoragePoolPut = Static<typeof StoragePoolPut>;

export const PoolActions = ['build', 'start', 'stop', 'refresh', 'delete'] as const;
export const StoragePoolStatePut = Type.Object(
  { action: Type.Enum([...PoolActions], { description: 'build creates the directory or VG; delete destroys it (pool must be stopped)' }) },
  { additionalProperties: false, title: 'StoragePoolStatePut' },
);
export type StoragePoolStatePut = Static<typeof StoragePoolStatePut>;

export const StoragePool = Type.Object(
  {
    name: ObjectName,
    uuid: Uuid,
    type: PoolType,
    state: PoolState,
    autostart: Type.Boolean(),
    target: Type.String({ description: 'dir: the directory; logical: /dev/<vg>' }),
    vgName: Type.Optional(Type.String()),
    sourceDevices: Type.Array(Type.String()),
    capacityBytes: Count,
    allocationBytes: Count,
    availableBytes: Count,
  },
  { additionalProperties: false, title: 'StoragePool' },
);
export type StoragePool = Static<typeof StoragePool>;
export const StoragePoolList = Type.Object({ pools: Type.Array(StoragePool), ...PageResponseFields }, { additionalProperties: false, title: 'StoragePoolList' });

export const StorageVolumesPost = Type.Object(
  {
    name: ObjectName,
    format: Type.Optional(Type.Enum([...VolumeFormats], { description: 'default: qcow2 in dir pools, raw in logical pools' })),
    capacity: SizeSpec,
    backing: Type.Optional(Type.Object({ volume: ObjectName }, { additionalProperties: false, description: 'copy-on-write overlay over this volume of the pool' })),
  },
  { additionalProperties: false, title: 'StorageVolumesPost' },
);
export type StorageVolumesPost = Static<typeof StorageVolumesPost>;

export const BackingImage = Type.Object({ path: Type.String(), format: Type.String() }, { additionalProperties: false });
export const StorageVolume = Type.Object(
  {
    name: ObjectName,
    pool: ObjectName,
    path: Type.String(),
    format: VolumeFormat,
    capacityBytes: Count,
    allocationBytes: Count,
    backingChain: Type.Array(BackingImage, { description: 'Backing images, nearest first (from qemu-img info --backing-chain)' }),
  },
  { additionalProperties: false, title: 'StorageVolume' },
);
export type StorageVolume = Static<typeof StorageVolume>;
export const StorageVolumeList = Type.Object({ volumes: Type.Array(StorageVolume), ...PageResponseFields }, { additionalProperties: false, title: 'StorageVolumeList' });

export const VolumeResize = Type.Object(
  { capacity: SizeSpec, allowShrink: Type.Optional(Type.Boolean({ description: 'Shrinking loses data; refused unless true' })) },
  { additionalProperties: false, title: 'VolumeResize' },
);
export const VolumeClone = Type.Object({ name: ObjectName }, { additionalProperties: false, title: 'VolumeClone' });

export const OperationStatuses = ['running', 'success', 'failure', 'cancelled'] as const;
export const AsyncOperation = Type.Object(
  {
    id: Uuid,
    class: Type.Literal('task'),
    description: Type.String(),
    status: Type.Enum([...OperationStatuses]),
    progress: Type.Object(
      { percent: Type.Number({ minimum: 0, maximum: 100 }), bytesProcessed: Count, bytesTotal: Count },
      { additionalProperties: false },
    ),
    resources: Type.Object(
      { pool: Type.Optional(ObjectName), volume: Type.Optional(ObjectName), domain: Type.Optional(Uuid), destination: Type.Optional(NodeName) },
      { additionalProperties: false },
    ),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
    result: Type.Optional(
      Type.Object(
        { sizeBytes: Type.Optional(Count), sha256: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$' })) },
        { additionalProperties: false },
      ),
    ),
    error: Type.Optional(ErrorBody),
    migration: Type.Optional(MigrationProgress),
  },
  { additionalProperties: false, title: 'Operation', description: 'An asynchronous operation (Incus-style) with progress and cancel' },
);
export type AsyncOperation = Static<typeof AsyncOperation>;
export const AsyncOperationList = Type.Object({ operations: Type.Array(AsyncOperation), ...PageResponseFields }, { additionalProperties: false, title: 'OperationList' });

/** A content transfer session: chunks go over NATS requests on `subject`, one acknowledged chunk at a time. */
export const StreamSession = Type.Object(
  {
    session: Type.String({ pattern: '^[A-Za-z0-9]{8,64}$' }),
    subject: Type.String(),
    chunkBytes: Type.Integer({ minimum: 1 }),
    sizeBytes: Type.Optional(Type.Integer({ minimum: 0, description: 'download: bytes that will be sent' })),
    operation: AsyncOperation,
  },
  { additionalProperties: false, title: 'StreamSession' },
);
export type StreamSession = Static<typeof StreamSession>;

/** NATS headers of the chunk protocol. */
export const StreamHeaders = {
  Offset: 'virtbus-offset',
  Action: 'virtbus-stream',
  Sha256: 'virtbus-sha256',
} as const;
/** Upload: `chunk` (default) carries bytes; `commit` finishes and returns the operation; `abort` throws the partial data away. */
export const StreamActions = { Chunk: 'chunk', Commit: 'commit', Abort: 'abort' } as const;

/** libvirt's virStoragePoolEventLifecycleType. */
export const PoolEventTypes = ['DEFINED', 'UNDEFINED', 'STARTED', 'STOPPED', 'CREATED', 'DELETED'] as const;
export const PoolEventType = Type.Enum([...PoolEventTypes]);
export type PoolEventType = Static<typeof PoolEventType>;

export const StoragePoolEvent = Type.Object(
  {
    ...eventHeaderFields('pool.lifecycle', 'Per-node sequence number shared with domain events'),
    name: ObjectName,
    type: PoolEventType,
    state: PoolState,
  },
  { additionalProperties: false, title: 'StoragePoolEvent' },
);
export type StoragePoolEvent = Static<typeof StoragePoolEvent>;

/** Progress and completion of an async operation (core NATS, best effort, not numbered). */
export const OperationEvent = Type.Object(
  { kind: Type.Literal('operation'), node: Type.String(), timestamp: Type.String({ format: 'date-time' }), operation: AsyncOperation },
  { additionalProperties: false, title: 'OperationEvent' },
);
export type OperationEvent = Static<typeof OperationEvent>;

const PoolRef = Type.Object({ pool: ObjectName }, { additionalProperties: false });
const VolumeRef = Type.Object({ pool: ObjectName, volume: ObjectName }, { additionalProperties: false });
const OperationRef = Type.Object({ id: Uuid }, { additionalProperties: false });

/** Storage operations of the agent API, merged into `Operations` (api.ts). */
export const StorageOperations = {
  'pool.list': namedListOperation('StoragePoolListRequest', StoragePoolList, 'Storage pools of the node in name order (paged with limit/continue)', { path: '/storage-pools', operationId: 'listStoragePools', tag: HttpTags.Storage }),
  'pool.get': {
    access: Access.ReadOnly,
    request: PoolRef,
    response: StoragePool,
    summary: 'One pool with capacity, allocation and available bytes',
    permission: PermissionClass.Read,
    errors: ObjectErrors.pool,
    http: { method: 'GET', path: '/storage-pools/:pool', operationId: 'getStoragePool', tag: HttpTags.Storage },
  },
  'pool.define': {
    access: Access.ReadWrite,
    request: StoragePoolsPost,
    response: StoragePool,
    summary: 'Define a storage pool (inactive until built and started)',
    permission: PermissionClass.Storage,
    errors: ['STORAGE_POOL_EXISTS', 'PAYLOAD_TOO_LARGE'],
    http: { method: 'POST', path: '/storage-pools', operationId: 'defineStoragePool', tag: HttpTags.Storage, status: 201, body: true },
  },
  'pool.update': {
    access: Access.ReadWrite,
    request: Type.Object({ pool: ObjectName, config: StoragePoolPut }, { additionalProperties: false }),
    response: StoragePool,
    summary: 'Change autostart',
    permission: PermissionClass.Storage,
    errors: ObjectErrors.pool,
    http: { method: 'PUT', path: '/storage-pools/:pool', operationId: 'updateStoragePool', tag: HttpTags.Storage, body: 'config' },
  },
  'pool.undefine': {
    access: Access.ReadWrite,
    request: PoolRef,
    response: StoragePool,
    summary: 'Remove an inactive pool definition',
    permission: PermissionClass.Storage,
    errors: ObjectErrors.pool,
    http: { method: 'DELETE', path: '/storage-pools/:pool', operationId: 'undefineStoragePool', tag: HttpTags.Storage },
  },
  'pool.state': {
    access: Access.ReadWrite,
    request: Type.Object({ pool: ObjectName, change: StoragePoolStatePut }, { additionalProperties: false }),
    response: StoragePool,
    summary: 'Build, start, stop, refresh or delete a pool',
    permission: PermissionClass.Storage,
    errors: ObjectErrors.pool,
    http: { method: 'PUT', path: '/storage-pools/:pool/state', operationId: 'changeStoragePoolState', tag: HttpTags.Storage, body: 'change' },
    wait: { seconds: 120 },
  },
  'volume.list': {
    access: Access.ReadOnly,
    request: Type.Object({ pool: ObjectName, ...NamePageRequestFields }, { additionalProperties: false, title: 'StorageVolumeListRequest' }),
    response: StorageVolumeList,
    summary: 'Volumes of a running pool in name order (paged with limit/continue)',
    permission: PermissionClass.Read,
    errors: ObjectErrors.pool,
    http: { method: 'GET', path: '/storage-pools/:pool/volumes', operationId: 'listStorageVolumes', tag: HttpTags.Storage, query: true },
  },
  'volume.get': {
    access: Access.ReadOnly,
    request: VolumeRef,
    response: StorageVolume,
    summary: 'One volume: format, sizes, backing chain',
    permission: PermissionClass.Read,
    errors: ObjectErrors.volume,
    http: { method: 'GET', path: '/storage-pools/:pool/volumes/:vol', operationId: 'getStorageVolume', tag: HttpTags.Storage, params: { vol: 'volume' } },
  },
  'volume.create': {
    access: Access.ReadWrite,
    request: Type.Object({ pool: ObjectName, volume: StorageVolumesPost }, { additionalProperties: false }),
    response: StorageVolume,
    summary: 'Create a volume (qcow2 or raw), optionally a copy-on-write overlay over a backing volume',
    permission: PermissionClass.Storage,
    errors: ['NO_STORAGE_POOL', 'NO_STORAGE_VOL', 'OPERATION_INVALID', 'STORAGE_VOL_EXISTS', 'PAYLOAD_TOO_LARGE', 'OPERATION_UNSUPPORTED'],
    http: { method: 'POST', path: '/storage-pools/:pool/volumes', operationId: 'createStorageVolume', tag: HttpTags.Storage, status: 201, body: 'volume' },
    wait: { seconds: 120 },
  },
  'volume.delete': {
    access: Access.ReadWrite,
    request: VolumeRef,
    response: StorageVolume,
    summary: 'Delete a volume; returns it as it was',
    permission: PermissionClass.Storage,
    errors: ObjectErrors.volume,
    http: { method: 'DELETE', path: '/storage-pools/:pool/volumes/:vol', operationId: 'deleteStorageVolume', tag: HttpTags.Storage, params: { vol: 'volume' } },
  },
  'volume.resize': {
    access: Access.ReadWrite,
    request: Type.Object({ pool: ObjectName, volume: ObjectName, resize: VolumeResize }, { additionalProperties: false }),
    response: StorageVolume,
    summary: 'Grow a volume; shrinking needs allowShrink',
    permission: PermissionClass.Storage,
    errors: ObjectErrors.volume,
    http: { method: 'POST', path: '/storage-pools/:pool/volumes/:vol/resize', operationId: 'resizeStorageVolume', tag: HttpTags.Storage, body: 'resize', params: { vol: 'volume' } },
  },
  'volume.clone': {
    access: Access.ReadWrite,
    request: Type.Object({ pool: ObjectName, volume: ObjectName, clone: VolumeClone }, { additionalProperties: false }),
    response: AsyncOperation,
    summary: 'Copy a volume into a new one; returns the async operation',
    permission: PermissionClass.Storage,
    errors: ['NO_STORAGE_POOL', 'NO_STORAGE_VOL', 'OPERATION_INVALID', 'STORAGE_VOL_EXISTS', 'OPERATION_UNSUPPORTED'],
    http: { method: 'POST', path: '/storage-pools/:pool/volumes/:vol/clone', operationId: 'cloneStorageVolume', tag: HttpTags.Storage, status: 202, body: 'clone', params: { vol: 'volume' } },
  },
  'volume.wipe': {
    access: Access.ReadWrite,
    request: VolumeRef,
    response: AsyncOperation,
    summary: 'Zero a volume; returns the async operation',
    permission: PermissionClass.Storage,
    errors: ObjectErrors.volume,
    http: { method: 'POST', path: '/storage-pools/:pool/volumes/:vol/wipe', operationId: 'wipeStorageVolume', tag: HttpTags.Storage, status: 202, params: { vol: 'volume' } },
  },
  'volume.upload': {
    access: Access.ReadWrite,
    request: Type.Object(
      {
        pool: ObjectName,
        volume: ObjectName,
        sizeBytes: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Expected size: progress total, and a shorter upload fails at commit' })),
        create: Type.Optional(Type.Boolean({ description: 'Create a missing volume (a dir pool file of the upload\'s size); without it a missing volume is NO_STORAGE_VOL' })),
      },
      { additionalProperties: false },
    ),
    response: StreamSession,
    summary:
      'Open an upload session into an existing volume, whose capacity never changes (a raw volume keeps its size, zeros after the upload; an upload that would change a qcow2 volume\'s format or size is refused); `create` makes a missing one',
    permission: PermissionClass.Storage,
    errors: ObjectErrors.volume,
    http: { method: 'PUT', path: '/storage-pools/:pool/volumes/:vol/content', operationId: 'uploadStorageVolume', tag: HttpTags.Storage, params: { vol: 'volume' }, served: 'hand' },
  },
  // disk contents may hold secrets: reading them needs the storage role
  'volume.download': {
    access: Access.ReadOnly,
    request: VolumeRef,
    response: StreamSession,
    summary: 'Download volume content; the sha256 is in the trailer and in the operation named by x-virtbus-operation',
    permission: PermissionClass.Storage,
    errors: ObjectErrors.volume,
    http: { method: 'GET', path: '/storage-pools/:pool/volumes/:vol/content', operationId: 'downloadStorageVolume', tag: HttpTags.Storage, params: { vol: 'volume' }, served: 'hand' },
  },
  'operation.list': {
    access: Access.ReadOnly,
    request: Type.Object(PageRequestFields, { additionalProperties: false, title: 'OperationListRequest' }),
    response: AsyncOperationList,
    summary: 'Running and recently finished async operations, oldest first (paged with limit/continue)',
    permission: PermissionClass.Read,
    http: { method: 'GET', path: '/operations', operationId: 'listOperations', tag: HttpTags.Storage, query: true },
  },
  'operation.get': {
    access: Access.ReadOnly,
    request: OperationRef,
    response: AsyncOperation,
    summary: 'One async operation with progress',
    permission: PermissionClass.Read,
    errors: ['NOT_FOUND'],
    http: { method: 'GET', path: '/operations/:id', operationId: 'getOperation', tag: HttpTags.Storage },
  },
  'operation.cancel': {
    access: Access.ReadWrite,
    request: OperationRef,
    response: AsyncOperation,
    summary: 'Cancel a running operation',
    permission: PermissionClass.Storage,
    errors: ['NOT_FOUND', 'OPERATION_INVALID'],
    http: { method: 'DELETE', path: '/operations/:id', operationId: 'cancelOperation', tag: HttpTags.Storage },
  },
} as const satisfies Record<string, OperationSpec>;

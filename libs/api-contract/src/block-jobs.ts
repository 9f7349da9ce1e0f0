import Type, { type Static, type TSchema } from 'typebox';
import { DiskTarget } from './domain.js';
import { DomainId, HostPath } from './names.js';
import { AsyncOperation } from './storage.js';
import { Access } from './subjects.js';
import { HttpTags, ObjectErrors, PermissionClass, type OperationSpec } from './operation-spec.js';

const Bandwidth = Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 53 - 1, description: 'Copy speed limit in bytes per second (0: none), like virsh --bandwidth' }));

export const BlockCommitRequest = Type.Object(
  {
    top: Type.Optional(Type.String({ ...HostPath, description: 'Image merged down (default: the active layer, an active commit that pivots onto `base`)' })),
    base: Type.Optional(Type.String({ ...HostPath, description: "Image merged into (default: the chain's bottom)" })),
    bandwidth: Bandwidth,
  },
  { additionalProperties: false, title: 'BlockCommit', description: "virsh blockcommit --pivot: merge a disk's overlay into an image below it" },
);
export type BlockCommitRequest = Static<typeof BlockCommitRequest>;

export const BlockPullRequest = Type.Object(
  { base: Type.Optional(Type.String({ ...HostPath, description: 'Keep this backing image and everything below it (default: pull all)' })), bandwidth: Bandwidth },
  { additionalProperties: false, title: 'BlockPull', description: "virsh blockpull: copy the backing chain's data into the disk's top image" },
);
export type BlockPullRequest = Static<typeof BlockPullRequest>;

export const BlockCopyRequest = Type.Object(
  {
    destination: HostPath,
    format: Type.Optional(Type.Union([Type.Literal('qcow2'), Type.Literal('raw')], { default: 'qcow2' })),
    pivot: Type.Optional(Type.Boolean({ description: 'Switch the disk to the copy once in sync (default false: the job stays ready, mirroring, until blockjob pivot or abort)' })),
    bandwidth: Bandwidth,
  },
  { additionalProperties: false, title: 'BlockCopy', description: 'virsh blockcopy: mirror the disk into a new image file the node creates' },
);
export type BlockCopyRequest = Static<typeof BlockCopyRequest>;

export const BlockResizeRequest = Type.Object(
  { sizeBytes: Type.Integer({ minimum: 512, maximum: 2 ** 53 - 1, description: 'New virtual size (a multiple of 512)' }) },
  { additionalProperties: false, title: 'BlockResize', description: 'virsh blockresize: change the size of a running disk; the guest sees it at once' },
);
export type BlockResizeRequest = Static<typeof BlockResizeRequest>;

const Limit = (description: string) => Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 53 - 1, description: `${description} (0: no limit)` }));
export const BlockIoTune = Type.Object(
  {
    totalBytesSec: Limit('Bytes per second, read and write'),
    readBytesSec: Limit('Read bytes per second'),
    writeBytesSec: Limit('Written bytes per second'),
    totalIopsSec: Limit('Operations per second, read and write'),
    readIopsSec: Limit('Read operations per second'),
    writeIopsSec: Limit('Write operations per second'),
  },
  { additionalProperties: false, title: 'BlockIoTune', description: 'virsh blkdeviotune: I/O limits of one disk of a running domain; absent fields are 0 (no limit)' },
);
export type BlockIoTune = Static<typeof BlockIoTune>;

export const BlockJobTypes = ['PULL', 'COPY', 'COMMIT', 'ACTIVE_COMMIT'] as const;
export const BlockJobInfo = Type.Object(
  {
    target: DiskTarget,
    type: Type.Enum([...BlockJobTypes], { description: 'virDomainBlockJobType' }),
    bytesProcessed: Type.Integer({ minimum: 0 }),
    bytesTotal: Type.Integer({ minimum: 0 }),
    ready: Type.Boolean({ description: 'A copy or active commit in sync: it can pivot' }),
    bandwidth: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false, title: 'BlockJobInfo', description: 'virsh blockjob --info: the job running on a disk' },
);
export type BlockJobInfo = Static<typeof BlockJobInfo>;

export const BlockJobAbort = Type.Object(
  { pivot: Type.Optional(Type.Boolean({ description: 'Pivot a ready copy or active commit instead of cancelling it' })) },
  { additionalProperties: false, title: 'BlockJobAbort' },
);

const DiskRef = { id: DomainId, target: DiskTarget };
const errors = ObjectErrors.disk;
/** A block job start: POST /domains/:id/disks/:target/<verb> with the verb's body, answered 202 with the async operation. */
function jobStart<S extends TSchema, B extends string>(body: B, schema: S, summary: string, operationId: string) {
  return {
    access: Access.ReadWrite,
    request: Type.Object({ ...DiskRef, body: schema }, { additionalProperties: false }),
    response: AsyncOperation,
    summary: `${summary}; returns the async operation (progress, cancel)`,
    permission: PermissionClass.Define,
    errors,
    http: { method: 'POST', path: `/domains/:id/disks/:target/${body}`, operationId, tag: HttpTags.Domains, status: 202, body: 'body' },
  } as const;
}

/** Block jobs and live disk tuning of the agent API (virsh blockcommit, blockpull, blockcopy, blockjob, blockresize, blkdeviotune), merged into `Operations` (api.ts). */
export const BlockJobOperations = {
  'domain.block.commit': jobStart('commit', BlockCommitRequest, 'Merge an overlay of a running disk into an image below it (virsh blockcommit)', 'blockCommit'),
  'domain.block.pull': jobStart('pull', BlockPullRequest, "Pull a running disk's backing chain into its top image (virsh blockpull)", 'blockPull'),
  'domain.block.copy': jobStart('copy', BlockCopyRequest, 'Copy a running disk into a new image, then pivot onto it (virsh blockcopy)', 'blockCopy'),
  'domain.blockjob.get': {
    access: Access.ReadOnly,
    request: Type.Object(DiskRef, { additionalProperties: false }),
    response: BlockJobInfo,
    summary: 'The block job running on a disk (virsh blockjob --info); NOT_FOUND when none',
    permission: PermissionClass.Read,
    errors: [...errors, 'NOT_FOUND'],
    http: { method: 'GET', path: '/domains/:id/disks/:target/job', operationId: 'getBlockJob', tag: HttpTags.Domains },
  },
  'domain.blockjob.abort': {
    access: Access.ReadWrite,
    request: Type.Object({ ...DiskRef, abort: BlockJobAbort }, { additionalProperties: false }),
    response: Type.Object({}, { additionalProperties: false }),
    summary: 'Cancel the block job of a disk, or pivot a ready one (virsh blockjob --abort / --pivot)',
    permission: PermissionClass.Define,
    errors: [...errors, 'NOT_FOUND'],
    http: { method: 'DELETE', path: '/domains/:id/disks/:target/job', operationId: 'abortBlockJob', tag: HttpTags.Domains, query: 'abort' },
  },
  'domain.block.resize': {
    access: Access.ReadWrite,
    request: Type.Object({ ...DiskRef, resize: BlockResizeRequest }, { additionalProperties: false }),
    response: Type.Object({}, { additionalProperties: false }),
    summary: 'Resize a disk of a running domain (virsh blockresize)',
    permission: PermissionClass.Define,
    errors,
    http: { method: 'PUT', path: '/domains/:id/disks/:target/size', operationId: 'resizeBlock', tag: HttpTags.Domains, body: 'resize' },
  },
  'domain.block.iotune': {
    access: Access.ReadWrite,
    request: Type.Object({ ...DiskRef, tune: BlockIoTune }, { additionalProperties: false }),
    response: BlockIoTune,
    summary: 'Set the I/O limits of a disk of a running domain (virsh blkdeviotune); answers the limits in force',
    permission: PermissionClass.Define,
    errors,
    http: { method: 'PUT', path: '/domains/:id/disks/:target/iotune', operationId: 'setBlockIoTune', tag: HttpTags.Domains, body: 'tune' },
  },
} as const satisfies Record<string, OperationSpec>;

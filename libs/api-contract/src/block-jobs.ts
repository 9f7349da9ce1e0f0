import Type, { type Static, type TProperties, type TSchema } from 'typebox';
import { DiskTarget } from './domain.js';
import { DomainId, HostPath } from './names.js';
import { AsyncOperation } from './storage.js';
import { Access } from './subjects.js';
import { HttpTags, ObjectErrors, PermissionClass, type HttpBinding, type OperationSpec } from './operation-spec.js';

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
const jobErrors = [...errors, 'NOT_FOUND'] as const;
const Done = Type.Object({}, { additionalProperties: false });

/** An operation on one disk of a running domain at `/domains/:id/disks/:target/<suffix>`, its request the disk plus `fields`. */
function onDisk<F extends TProperties, R extends TSchema, const H extends Omit<HttpBinding, 'path' | 'tag'>, const S extends string>(
  suffix: S,
  fields: F,
  response: R,
  summary: string,
  http: H,
  rest: Pick<OperationSpec, 'access' | 'permission' | 'errors'>,
) {
  return {
    ...rest,
    request: Type.Object({ ...DiskRef, ...fields }, { additionalProperties: false }),
    response,
    summary,
    http: { ...http, path: `/domains/:id/disks/:target/${suffix}`, tag: HttpTags.Domains } as const,
  } as const;
}

const write = { access: Access.ReadWrite, permission: PermissionClass.Define, errors } as const;
/** A block job start, answered 202 with the async operation. */
const jobStart = <S extends TSchema, B extends string>(verb: B, schema: S, summary: string, operationId: string) =>
  onDisk(verb, { body: schema }, AsyncOperation, `${summary}; returns the async operation (progress, cancel)`, { method: 'POST', operationId, status: 202, body: 'body' }, write);

/** Block jobs and live disk tuning of the agent API (virsh blockcommit, blockpull, blockcopy, blockjob, blockresize, blkdeviotune), merged into `Operations` (api.ts). */
export const BlockJobOperations = {
  'domain.block.commit': jobStart('commit', BlockCommitRequest, 'Merge an overlay of a running disk into an image below it (virsh blockcommit)', 'blockCommit'),
  'domain.block.pull': jobStart('pull', BlockPullRequest, "Pull a running disk's backing chain into its top image (virsh blockpull)", 'blockPull'),
  'domain.block.copy': jobStart('copy', BlockCopyRequest, 'Copy a running disk into a new image, then pivot onto it (virsh blockcopy)', 'blockCopy'),
  'domain.blockjob.get': onDisk('job', {}, BlockJobInfo, 'The block job running on a disk (virsh blockjob --info); NOT_FOUND when none', { method: 'GET', operationId: 'getBlockJob' }, {
    access: Access.ReadOnly,
    permission: PermissionClass.Read,
    errors: jobErrors,
  }),
  'domain.blockjob.abort': onDisk('job', { abort: BlockJobAbort }, Done, 'Cancel the block job of a disk, or pivot a ready one (virsh blockjob --abort / --pivot)', { method: 'DELETE', operationId: 'abortBlockJob', query: 'abort' }, { ...write, errors: jobErrors }),
  'domain.block.resize': onDisk('size', { resize: BlockResizeRequest }, Done, 'Resize a disk of a running domain (virsh blockresize)', { method: 'PUT', operationId: 'resizeBlock', body: 'resize' }, write),
  'domain.block.iotune': onDisk('iotune', { tune: BlockIoTune }, BlockIoTune, 'Set the I/O limits of a disk of a running domain (virsh blkdeviotune); answers the limits in force', { method: 'PUT', operationId: 'setBlockIoTune', body: 'tune' }, write),
} as const satisfies Record<string, OperationSpec>;

import Type, { type Static } from 'typebox';
import { Domain, DomainsPost } from './domain.js';
import { ObjectName } from './names.js';
import { SizeSpec } from './storage.js';
import { Access } from './subjects.js';
import { HttpTags, PermissionClass, type OperationSpec } from './operation-spec.js';

const CloudInitText = Type.String({ maxLength: 65_536, pattern: '^[^\\x00]*$' });

export const CloudInitSeed = Type.Object(
  {
    userData: Type.Optional(Type.String({ ...CloudInitText, description: 'user-data (e.g. `#cloud-config` YAML); default an empty #cloud-config' })),
    metaData: Type.Optional(Type.String({ ...CloudInitText, description: 'meta-data; default instance-id = uuid, local-hostname = name' })),
    networkConfig: Type.Optional(Type.String({ ...CloudInitText, description: 'network-config (v1 or v2 YAML); omitted when absent' })),
  },
  { additionalProperties: false, title: 'CloudInitSeed', description: 'cloud-init NoCloud seed, written to an ISO9660 volume labelled cidata' },
);
export type CloudInitSeed = Static<typeof CloudInitSeed>;

export const DomainFromImage = Type.Object(
  {
    domain: DomainsPost,
    image: Type.Object(
      { pool: ObjectName, volume: ObjectName },
      { additionalProperties: false, description: 'Base image volume; the overlay and the seed are created in the same pool' },
    ),
    rootSize: Type.Optional(SizeSpec),
    cloudInit: Type.Optional(CloudInitSeed),
  },
  {
    additionalProperties: false,
    title: 'DomainFromImage',
    description:
      'Define a domain from an image in one call: a qcow2 overlay `<name>-root` on the image becomes the first virtio disk, and a cloud-init seed `<name>-cidata.iso` is attached as a cdrom',
  },
);
export type DomainFromImage = Static<typeof DomainFromImage>;

/** Provisioning operations of the agent API, merged into `Operations` (api.ts). */
export const ProvisionOperations = {
  // creates volumes too, but what it makes is a domain definition
  'domain.define.image': {
    access: Access.ReadWrite,
    request: DomainFromImage,
    response: Domain,
    summary: 'Define a domain on a qcow2 overlay of an image volume, with a cloud-init NoCloud seed cdrom',
    permission: PermissionClass.Define,
    errors: ['NO_STORAGE_POOL', 'NO_STORAGE_VOL', 'DOMAIN_EXISTS', 'STORAGE_VOL_EXISTS', 'OPERATION_INVALID', 'PAYLOAD_TOO_LARGE', 'OPERATION_UNSUPPORTED'],
    http: { method: 'POST', path: '/domains/from-image', operationId: 'defineDomainFromImage', tag: HttpTags.Domains, status: 201, body: true },
    wait: { seconds: 60 },
  },
} as const satisfies Record<string, OperationSpec>;

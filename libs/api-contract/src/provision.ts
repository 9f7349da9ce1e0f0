import Type, { type Static } from 'typebox';
import { Domain, DomainsPost } from './domain.js';
import { ObjectName } from './names.js';
import { SizeSpec } from './storage.js';
import { Access } from './subjects.js';

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
  'domain.define.image': {
    access: Access.ReadWrite,
    request: DomainFromImage,
    response: Domain,
    summary: 'Define a domain on an overlay of an image volume, with a cloud-init NoCloud seed cdrom',
  },
} as const;

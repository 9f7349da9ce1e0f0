import Type, { type Static } from 'typebox';
import { DomainId, ObjectName, Uuid } from './names.js';
import { HttpTags, PermissionClass, type OperationSpec } from './operation-spec.js';
import { Access } from './subjects.js';

export const DomainXmlRequest = Type.Object({ id: DomainId }, { additionalProperties: false, title: 'DomainXmlRequest' });

/** domain.xml: the definition libvirt holds for a domain of driver libvirt (read-only). */
export const DomainXml = Type.Object(
  { uuid: Uuid, name: ObjectName, xml: Type.String({ description: "libvirt's domain XML (virsh dumpxml)" }) },
  { additionalProperties: false, title: 'DomainXml' },
);
export type DomainXml = Static<typeof DomainXml>;

/** Verbs of domains run by a host's libvirtd (driver libvirt). */
export const LibvirtOperations = {
  'domain.xml': {
    access: Access.ReadOnly,
    request: DomainXmlRequest,
    response: DomainXml,
    summary: 'The domain XML libvirt holds for a domain of driver libvirt (read-only; other drivers answer OPERATION_UNSUPPORTED)',
    permission: PermissionClass.Read,
    errors: ['NO_DOMAIN', 'OPERATION_UNSUPPORTED'],
    http: { method: 'GET', path: '/domains/:id/xml', operationId: 'getDomainXml', tag: HttpTags.Domains },
  },
} as const satisfies Record<string, OperationSpec>;

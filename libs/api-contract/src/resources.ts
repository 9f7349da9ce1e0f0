import Type, { type Static, type TSchema } from 'typebox';
import { scopeFields } from './devices.js';
import { Domain, DomainsPost } from './domain.js';
import { DomainId } from './names.js';
import { Access } from './subjects.js';
import { HttpTags, PermissionClass, type OperationSpec } from './operation-spec.js';


export const VcpusSet = Type.Object(
  {
    count: Type.Integer({ minimum: 1, maximum: 256, description: 'vCPUs wanted, at most cpu.maxVcpus' }),
    ...scopeFields,
    timeout: Type.Optional(Type.Integer({ minimum: 1, maximum: 600, description: 'Seconds to wait for the guest to release unplugged vCPUs (default 10)' })),
  },
  { additionalProperties: false, title: 'VcpusSet', description: "virsh setvcpus: hotplug or unplug vCPUs (live) and/or change the definition's count (config)" },
);
export type VcpusSet = Static<typeof VcpusSet>;

export const MemorySet = Type.Object(
  { memory: Type.Integer({ minimum: 1, maximum: 4_194_304, description: 'Balloon target in MiB, at most memory (the maximum)' }), ...scopeFields },
  { additionalProperties: false, title: 'MemorySet', description: "virsh setmem: the balloon target of the running domain (live) and/or the definition's currentMemory (config)" },
);
export type MemorySet = Static<typeof MemorySet>;

export const DomainCreate = Type.Object(
  { ...DomainsPost.properties, paused: Type.Optional(Type.Boolean({ description: 'Leave the vCPUs paused' })) },
  { additionalProperties: false, title: 'DomainCreate', description: "libvirt's create: a transient domain, defined and started in one call, removed when it shuts off" },
);
export type DomainCreate = Static<typeof DomainCreate>;

/** How long a vCPU unplug waits for the guest to eject each vCPU by default. */
export const DEFAULT_VCPU_UNPLUG_TIMEOUT_S = 10;

/** A `PUT /domains/:id/<what>` change whose body is the request's `set` and whose answer is the domain. */
function setOperation<S extends TSchema, P extends string, O extends string>(set: S, path: P, operationId: O, summary: string) {
  return {
    access: Access.ReadWrite,
    request: Type.Object({ id: DomainId, set }, { additionalProperties: false }),
    response: Domain,
    summary,
    permission: PermissionClass.Define,
    errors: ['NO_DOMAIN', 'OPERATION_INVALID', 'OPERATION_UNSUPPORTED'],
    http: { method: 'PUT', path, operationId, tag: HttpTags.Domains, body: 'set' },
  } as const;
}

/** Live resource operations of the agent API, merged into `Operations` (api.ts). */
export const ResourceOperations = {
  'domain.vcpus.set': {
    ...setOperation(VcpusSet, '/domains/:id/vcpus', 'setDomainVcpus', 'Set the vCPU count: hotplug/unplug (live) and/or the definition (config), like virsh setvcpus'),
    wait: { seconds: DEFAULT_VCPU_UNPLUG_TIMEOUT_S, field: 'set.timeout', marginSeconds: 5 },
  },
  'domain.memory.set': setOperation(
    MemorySet,
    '/domains/:id/memory',
    'setDomainMemory',
    'Set the balloon target: the running domain (live) and/or currentMemory in the definition (config), like virsh setmem',
  ),
  'domain.create': {
    summary: 'Create and start a transient domain (gone once it shuts off), like virsh create',
    http: { method: 'POST', path: '/domains/create', operationId: 'createDomain', tag: HttpTags.Domains, status: 201, body: true },
    request: DomainCreate,
    response: Domain,
    access: Access.ReadWrite,
    errors: ['DOMAIN_EXISTS', 'PAYLOAD_TOO_LARGE', 'OPERATION_UNSUPPORTED'],
    permission: PermissionClass.Define,
  },
} as const satisfies Record<string, OperationSpec>;

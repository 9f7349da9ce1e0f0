import Type, { type Static } from 'typebox';
import { ExecRequest, ExecResult } from './domain.js';
import { DomainId } from './names.js';
import { HttpTags, PermissionClass, type OperationSpec } from './operation-spec.js';
import { Access } from './subjects.js';

/** virsh qemu-monitor-command: one QMP command (or an HMP line with `hmp`), its answer unparsed. */
export const QemuMonitorCommand = Type.Object(
  {
    command: Type.String({ minLength: 1, maxLength: 4096, pattern: '^[^\\x00]*$', description: 'QMP command name (e.g. query-status), or with hmp an HMP command line (e.g. info registers)' }),
    arguments: Type.Optional(Type.Record(Type.String({ maxLength: 128 }), Type.Unknown(), { maxProperties: 64, description: 'QMP arguments object' })),
    hmp: Type.Optional(Type.Boolean({ description: 'Run `command` as a human monitor line (human-monitor-command)' })),
  },
  { additionalProperties: false, title: 'QemuMonitorCommand' },
);
export type QemuMonitorCommand = Static<typeof QemuMonitorCommand>;
export const QemuMonitorRequest = Type.Object({ id: DomainId, monitor: QemuMonitorCommand }, { additionalProperties: false });
export const QemuMonitorResult = Type.Object(
  { return: Type.Unknown({ description: "QEMU's `return` value as it sent it (HMP: the text)" }) },
  { additionalProperties: false, title: 'QemuMonitorResult' },
);

export const LxcNamespace = Type.Enum(['mount', 'pid', 'uts', 'ipc', 'net', 'user', 'cgroup']);
export type LxcNamespace = Static<typeof LxcNamespace>;
/** virsh lxc-enter-namespace: a command in the container's namespaces, with the agent's privileges (no cgroup, capability or LSM confinement). */
export const LxcEnterCommand = Type.Object(
  {
    ...ExecRequest.properties,
    namespaces: Type.Optional(Type.Array(LxcNamespace, { minItems: 1, maxItems: 7, uniqueItems: true, description: 'Namespaces to enter (default: all the container has)' })),
  },
  { additionalProperties: false, title: 'LxcEnterCommand' },
);
export type LxcEnterCommand = Static<typeof LxcEnterCommand>;
export const LxcEnterRequest = Type.Object({ id: DomainId, enter: LxcEnterCommand }, { additionalProperties: false });

const HypervisorErrors = ['NO_DOMAIN', 'OPERATION_INVALID', 'OPERATION_UNSUPPORTED'] as const;

/** Calls for one hypervisor only (libvirt's qemu-* and lxc-* APIs): under /qemu/ and /lxc/ paths, OPERATION_UNSUPPORTED on other drivers. */
export const HypervisorOperations = {
  'domain.qemu.monitor': {
    access: Access.ReadWrite,
    request: QemuMonitorRequest,
    response: QemuMonitorResult,
    summary: 'QEMU only (drivers qemu and kvm, and libvirt domains whose hypervisor is qemu): run one QMP (or HMP) command on the domain\'s QEMU; admin only, audited, and the domain is shown tainted (custom-monitor) until it stops',
    permission: PermissionClass.Hypervisor,
    errors: HypervisorErrors,
    drivers: ['qemu', 'kvm', 'libvirt'],
    http: { method: 'POST', path: '/domains/:id/qemu/monitor-command', operationId: 'qemuMonitorCommand', tag: HttpTags.Domains, body: 'monitor' },
  },
  'domain.lxc.enter': {
    access: Access.ReadWrite,
    request: LxcEnterRequest,
    response: ExecResult,
    summary: "lxc only: run a command in the container's namespaces with the agent's privileges; admin only, audited, and the domain is shown tainted (custom-namespace) until it stops",
    permission: PermissionClass.Hypervisor,
    errors: [...HypervisorErrors, 'PAYLOAD_TOO_LARGE'],
    drivers: ['lxc'],
    http: { method: 'POST', path: '/domains/:id/lxc/enter-namespace', operationId: 'lxcEnterNamespace', tag: HttpTags.Domains, body: 'enter' },
    wait: { seconds: 60, field: 'enter.timeout', marginSeconds: 5 },
  },
} as const satisfies Record<string, OperationSpec>;

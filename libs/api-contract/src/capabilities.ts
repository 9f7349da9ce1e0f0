import Type, { type Static } from 'typebox';
import { DomainDriver } from './domain.js';
import { DriverInfo, NumaCell } from './node.js';
import { HttpTags, PermissionClass, type OperationSpec } from './operation-spec.js';
import { Access } from './subjects.js';

const Name = Type.String({ maxLength: 128 });
const Flags = Type.Array(Type.String({ maxLength: 64 }), { maxItems: 1024, description: 'CPU feature flags (/proc/cpuinfo names)' });

/** A host CPU as migration planning compares it: vendor, model name and feature flags. */
export const HostCpu = Type.Object(
  { arch: Type.String({ maxLength: 32 }), vendor: Type.String({ maxLength: 64 }), model: Type.String({ maxLength: 256 }), flags: Flags },
  { additionalProperties: false, title: 'HostCpu' },
);
export type HostCpu = Static<typeof HostCpu>;

/** virsh capabilities: the host's CPU, NUMA cells and what each driver runs. */
export const HostCapabilities = Type.Object(
  { node: Type.String(), cpu: HostCpu, numa: Type.Array(NumaCell), drivers: Type.Array(DriverInfo) },
  { additionalProperties: false, title: 'HostCapabilities' },
);
export type HostCapabilities = Static<typeof HostCapabilities>;

export const DomainCapabilitiesRequest = Type.Object(
  { driver: DomainDriver, machine: Type.Optional(Type.String({ maxLength: 64, pattern: '^[A-Za-z0-9._-]+$', description: 'Machine type (default: the emulator default)' })) },
  { additionalProperties: false },
);

/** virsh domcapabilities: what a domain of this type can be given on this node. */
export const DomainCapabilities = Type.Object(
  {
    driver: DomainDriver,
    emulator: Type.Optional(Type.String({ description: 'Emulator binary (qemu)' })),
    accel: Type.Optional(Type.String({ description: 'Accelerator the answer was probed with (kvm, tcg)' })),
    machine: Type.Optional(Name),
    machines: Type.Array(
      Type.Object(
        { name: Name, alias: Type.Optional(Name), default: Type.Optional(Type.Boolean()), maxCpus: Type.Integer({ minimum: 0 }), deprecated: Type.Optional(Type.Boolean()) },
        { additionalProperties: false },
      ),
      { maxItems: 512 },
    ),
    maxVcpus: Type.Integer({ minimum: 0, description: 'Most vCPUs a domain of this machine type may have' }),
    firmware: Type.Array(
      Type.Object({ type: Type.Enum(['bios', 'efi']), available: Type.Boolean(), path: Type.Optional(Type.String()) }, { additionalProperties: false }),
      { description: 'Firmware the node has (efi: Debian ovmf code files)' },
    ),
    cpuModels: Type.Array(
      Type.Object(
        {
          name: Name,
          usable: Type.Boolean({ description: 'Runs on this host with this accelerator (no feature missing)' }),
          unavailableFeatures: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 256 })),
          deprecated: Type.Optional(Type.Boolean()),
        },
        { additionalProperties: false },
      ),
      { maxItems: 1024, description: 'Named CPU models (query-cpu-definitions)' },
    ),
    hostModel: Type.Optional(
      Type.Object({ name: Name, features: Type.Array(Type.String({ maxLength: 64 }), { maxItems: 1024 }) }, { additionalProperties: false, description: 'host-model expansion (query-cpu-model-expansion of host or max)' }),
    ),
    devices: Type.Object(
      {
        diskBuses: Type.Array(Type.String()),
        nicModels: Type.Array(Type.String()),
        videoModels: Type.Array(Type.String()),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false, title: 'DomainCapabilities' },
);
export type DomainCapabilities = Static<typeof DomainCapabilities>;

export const CpuCompareRequest = Type.Object({ cpu: HostCpu }, { additionalProperties: false });
export const CpuCompareResult = Type.Object(
  {
    result: Type.Enum(['identical', 'superset', 'incompatible'], { description: "virsh cpu-compare: this node's CPU against the given one" }),
    missingFeatures: Type.Array(Type.String(), { description: 'Flags the given CPU has and this node lacks' }),
  },
  { additionalProperties: false, title: 'CpuCompareResult' },
);
export type CpuCompareResult = Static<typeof CpuCompareResult>;

export const CpuBaselineRequest = Type.Object({ cpus: Type.Array(HostCpu, { minItems: 1, maxItems: 256 }) }, { additionalProperties: false });

/** virsh cpu-compare: whether this CPU has every flag of `cpu` (a domain using all of them could move here). */
export function compareCpu(host: HostCpu, cpu: HostCpu): CpuCompareResult {
  const have = new Set(host.flags);
  const missingFeatures = cpu.flags.filter((flag) => !have.has(flag));
  if (host.arch !== cpu.arch || host.vendor !== cpu.vendor || missingFeatures.length > 0) return { result: 'incompatible', missingFeatures };
  return { result: have.size === new Set(cpu.flags).size ? 'identical' : 'superset', missingFeatures };
}

/** virsh cpu-baseline: the flags every given CPU has (what a domain may use to run on all of them). */
export function baselineCpu(cpus: readonly HostCpu[]): HostCpu {
  const [first, ...rest] = cpus;
  if (!first) throw new Error('baselineCpu needs at least one CPU');
  const flags = first.flags.filter((flag) => rest.every((cpu) => cpu.flags.includes(flag)));
  const same = <K extends 'arch' | 'vendor' | 'model'>(key: K) => (rest.every((cpu) => cpu[key] === first[key]) ? first[key] : 'mixed');
  return { arch: same('arch'), vendor: same('vendor'), model: same('model'), flags };
}

const CapabilityErrors = ['OPERATION_UNSUPPORTED'] as const;

export const CapabilityOperations = {
  'node.capabilities': {
    access: Access.ReadOnly,
    request: Type.Object({}, { additionalProperties: false }),
    response: HostCapabilities,
    summary: "virsh capabilities: the host's CPU (vendor, model, flags), NUMA cells and drivers",
    permission: PermissionClass.Read,
    http: { method: 'GET', path: '/capabilities', operationId: 'getHostCapabilities', tag: HttpTags.Nodes },
  },
  'node.domcapabilities': {
    access: Access.ReadOnly,
    request: DomainCapabilitiesRequest,
    response: DomainCapabilities,
    summary: 'virsh domcapabilities: machine types, firmware, CPU models usable on this host, device models and max vCPUs for a domain type',
    permission: PermissionClass.Read,
    errors: CapabilityErrors,
    drivers: ['qemu', 'kvm'],
    http: { method: 'GET', path: '/domain-capabilities', operationId: 'getDomainCapabilities', tag: HttpTags.Nodes, query: true },
    wait: { seconds: 30 },
  },
  'node.cpu.compare': {
    access: Access.ReadOnly,
    request: CpuCompareRequest,
    response: CpuCompareResult,
    summary: "virsh cpu-compare: whether this node's CPU has every feature of the given one (another node's HostCapabilities cpu)",
    permission: PermissionClass.Read,
    http: { method: 'POST', path: '/cpu/compare', operationId: 'compareCpu', tag: HttpTags.Nodes, body: true },
  },
  'node.cpu.baseline': {
    access: Access.ReadOnly,
    request: CpuBaselineRequest,
    response: HostCpu,
    summary: 'virsh cpu-baseline: the CPU features this node and every given CPU share (for domains that must run on all of them)',
    permission: PermissionClass.Read,
    http: { method: 'POST', path: '/cpu/baseline', operationId: 'baselineCpu', tag: HttpTags.Nodes, body: true },
  },
} as const satisfies Record<string, OperationSpec>;

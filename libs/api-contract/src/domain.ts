import Type, { type Static } from 'typebox';
import { HostPath, ObjectName, Uuid } from './names.js';
import { LabelSelector, Labels } from './labels.js';
import { PageRequestFields, PageResponseFields } from './paging.js';
import { DomainGraphics } from './graphics.js';

/** Which hypervisor runs a domain; `qemu` is TCG emulation and `kvm` hardware acceleration, both on the qemu driver. */
export const DomainDriver = Type.Enum(['test', 'qemu', 'kvm', 'lxc', 'libvirt'], { description: 'Domain type (hypervisor); libvirt: run by the host\'s libvirtd (agent --libvirt-uri)' });
export type DomainDriver = Static<typeof DomainDriver>;

/** libvirt's virDomainState names. */
export const DomainStates = ['nostate', 'running', 'blocked', 'paused', 'shutdown', 'shutoff', 'crashed', 'pmsuspended'] as const;
export const DomainState = Type.Enum([...DomainStates], { description: "libvirt's domain state" });
export type DomainState = Static<typeof DomainState>;

/** libvirt's per-state reasons (virDomainRunningReason, virDomainPausedReason, …) in lower case. */
export const StateReasons = {
  nostate: ['unknown'],
  running: ['unknown', 'booted', 'migrated', 'restored', 'from_snapshot', 'unpaused', 'migration_canceled', 'save_canceled', 'wakeup', 'crashed', 'postcopy'],
  blocked: ['unknown'],
  paused: ['unknown', 'user', 'migration', 'save', 'dump', 'ioerror', 'watchdog', 'from_snapshot', 'shutting_down', 'snapshot', 'crashed', 'starting_up', 'postcopy', 'postcopy_failed'],
  shutdown: ['unknown', 'user'],
  shutoff: ['unknown', 'shutdown', 'destroyed', 'crashed', 'migrated', 'saved', 'failed', 'from_snapshot', 'daemon'],
  crashed: ['unknown', 'panicked'],
  pmsuspended: ['unknown'],
} as const satisfies Record<DomainState, readonly string[]>;

export const StateReason = Type.Enum([...new Set(Object.values(StateReasons).flat())], {
  description: 'Why the domain is in its state (libvirt reason names, see StateReasons)',
});
export type StateReason = Static<typeof StateReason>;

export const DiskSource = Type.Union(
  [
    Type.Object({ path: HostPath }, { additionalProperties: false }),
    Type.Object({ pool: ObjectName, volume: ObjectName }, { additionalProperties: false }),
  ],
  { description: 'A file on the node or a volume in one of its storage pools' },
);

export const DiskTarget = Type.String({ pattern: '^(vd|sd|hd)[a-z]{1,2}$', description: 'Guest device name, e.g. vda' });

export const DomainDisk = Type.Object(
  {
    source: DiskSource,
    device: Type.Optional(Type.Enum(['disk', 'cdrom'], { description: 'disk when absent' })),
    format: Type.Optional(Type.Enum(['qcow2', 'raw'], { description: "qcow2 when absent (raw for a cdrom; a pool volume's own format)" })),
    bus: Type.Optional(Type.Enum(['virtio', 'sata', 'ide'], { description: 'virtio when absent (sata for a cdrom)' })),
    target: Type.Optional(DiskTarget),
    readonly: Type.Optional(Type.Boolean({ description: 'false when absent (true for a cdrom)' })),
  },
  { additionalProperties: false },
);
export type DomainDisk = Static<typeof DomainDisk>;

/** A disk of the running domain as attached now: always with its target; an ejected cdrom has no source. */
export const LiveDisk = Type.Object(
  {
    ...DomainDisk.properties,
    source: Type.Optional(DiskSource),
    target: DiskTarget,
  },
  { additionalProperties: false, title: 'LiveDisk' },
);
export type LiveDisk = Static<typeof LiveDisk>;

export const MacAddress = Type.String({ pattern: '^[0-9a-f]{2}(:[0-9a-f]{2}){5}$', description: 'Lower-case MAC address' });

export const DomainNic = Type.Object(
  {
    type: Type.Enum(['user', 'network', 'bridge', 'none'], { description: 'user-mode NAT, a virtbus network, or a host bridge' }),
    source: Type.Optional(ObjectName),
    model: Type.Optional(Type.Enum(['virtio', 'e1000', 'rtl8139'], { description: 'virtio when absent' })),
    mac: Type.Optional(MacAddress),
    filter: Type.Optional(Type.String({ ...ObjectName, description: 'Firewall rule set applied to this NIC while the domain runs (network and bridge NICs)' })),
  },
  { additionalProperties: false },
);
export type DomainNic = Static<typeof DomainNic>;

export const KernelCmdline = Type.String({
  maxLength: 4096,
  pattern: '^[^\\x00-\\x1f\\x7f]*$',
  description: 'Kernel command line (no control characters)',
});

export const DomainOs = Type.Object(
  {
    kernel: Type.Optional(HostPath),
    initrd: Type.Optional(HostPath),
    cmdline: Type.Optional(KernelCmdline),
    boot: Type.Optional(Type.Array(Type.Enum(['hd', 'cdrom', 'network']), { maxItems: 3, uniqueItems: true })),
    machine: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,63}$', description: 'Machine type, e.g. pc or q35' })),
    firmware: Type.Optional(Type.Enum(['bios', 'efi'], { description: 'bios (when absent): SeaBIOS; efi: OVMF with a per-domain NVRAM copy on the node' })),
    secureBoot: Type.Optional(Type.Boolean({ description: 'efi: OVMF with secure boot and Microsoft keys enrolled (needs machine q35; false when absent)' })),
  },
  { additionalProperties: false, description: "Boot configuration (libvirt's <os>): direct kernel boot or a boot order" },
);

export const DomainConsole = Type.Object(
  { type: Type.Enum(['serial', 'none'], { description: 'serial: a serial console (what a define without console gets); none: no console' }) },
  { additionalProperties: false },
);

export const EnvName = Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' });
export const CommandArg = Type.String({ maxLength: 4096, pattern: '^[^\\x00]*$' });

/** Container settings (driver `lxc`): root filesystem, init, limits, environment. */
export const DomainContainer = Type.Object(
  {
    rootfs: DiskSource,
    init: Type.Optional(Type.Array(CommandArg, { minItems: 1, maxItems: 64, description: 'Init command and arguments (default /sbin/init)' })),
    env: Type.Optional(Type.Record(EnvName, Type.String({ maxLength: 4096, pattern: '^[^\\x00\\n]*$' }))),
    hostname: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$' })),
    pidsLimit: Type.Optional(Type.Integer({ minimum: 1, maximum: 4_194_304 })),
    cpuShares: Type.Optional(Type.Integer({ minimum: 2, maximum: 262_144, description: 'Relative CPU weight (cgroup v1 cpu.shares scale)' })),
  },
  { additionalProperties: false },
);
export type DomainContainer = Static<typeof DomainContainer>;

/** libvirt's <cpu> and <vcpu current=…>: model, topology and the vCPU count hotplug may reach. */
export const DomainCpu = Type.Object(
  {
    model: Type.Optional(
      Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', description: 'host-model, host-passthrough (kvm), max (TCG) or a QEMU CPU model name' }),
    ),
    sockets: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
    cores: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
    threads: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
    maxVcpus: Type.Optional(Type.Integer({ minimum: 1, maximum: 256, description: 'vCPUs the domain may reach by hotplug (default: vcpus); sockets*cores*threads when a topology is given' })),
  },
  { additionalProperties: false, title: 'DomainCpu' },
);
export type DomainCpu = Static<typeof DomainCpu>;

/** One guest NUMA cell: its vCPUs and its share of the memory. */
export const DomainNumaCell = Type.Object(
  {
    cpus: Type.String({ pattern: '^\\d{1,3}(-\\d{1,3})?(,\\d{1,3}(-\\d{1,3})?){0,31}$', description: 'vCPU ids, e.g. 0-1,4' }),
    memory: Type.Integer({ minimum: 1, maximum: 4_194_304, description: 'MiB; the cells add up to memory' }),
  },
  { additionalProperties: false, title: 'DomainNumaCell' },
);
export type DomainNumaCell = Static<typeof DomainNumaCell>;

/** Other virtual hardware (libvirt's <rng>, <watchdog>, <controller type='usb'>, <input>). */
export const DomainDevices = Type.Object(
  {
    rng: Type.Optional(Type.Object({ model: Type.Enum(['virtio']), source: Type.Optional(Type.Enum(['/dev/urandom', '/dev/random'], { description: '/dev/urandom when absent' })) }, { additionalProperties: false })),
    watchdog: Type.Optional(
      Type.Object(
        {
          model: Type.Enum(['i6300esb', 'ib700']),
          action: Type.Optional(Type.Enum(['reset', 'shutdown', 'poweroff', 'pause', 'none', 'inject-nmi'], { description: 'What QEMU does when the watchdog fires (reset when absent)' })),
        },
        { additionalProperties: false },
      ),
    ),
    usb: Type.Optional(Type.Object({ model: Type.Enum(['qemu-xhci', 'piix3-uhci']) }, { additionalProperties: false })),
    inputs: Type.Optional(
      Type.Array(Type.Object({ type: Type.Enum(['tablet', 'mouse', 'keyboard']), bus: Type.Optional(Type.Enum(['usb', 'virtio'], { description: 'usb when absent' })) }, { additionalProperties: false }), {
        maxItems: 8,
        description: 'Input devices beyond the PS/2 mouse and keyboard of the pc and q35 machines',
      }),
    ),
    tpm: Type.Optional(
      Type.Object(
        { model: Type.Enum(['tpm-crb', 'tpm-tis']), version: Type.Optional(Type.Enum(['2.0'], { description: '2.0 when absent' })) },
        { additionalProperties: false, description: 'An emulated TPM: the node runs swtpm per domain, its state kept until undefine' },
      ),
    ),
  },
  { additionalProperties: false, title: 'DomainDevices' },
);
export type DomainDevices = Static<typeof DomainDevices>;

/** libvirt's <memoryBacking>: guest RAM on the host's huge pages. */
export const DomainMemoryBacking = Type.Object(
  { hugepages: Type.Optional(Type.Boolean({ description: 'Back guest memory with the host default-size huge pages (reserved in /proc/sys/vm/nr_hugepages); false when absent' })) },
  { additionalProperties: false, title: 'DomainMemoryBacking' },
);
export type DomainMemoryBacking = Static<typeof DomainMemoryBacking>;

/** libvirt's <maxMemory slots=…>: room for memory modules (DIMMs) hotplugged beside the boot memory. */
export const DomainMaxMemory = Type.Object(
  {
    memory: Type.Integer({ minimum: 1, maximum: 4_194_304, description: 'MiB the boot memory and hotplugged modules may reach (at least memory)' }),
    slots: Type.Integer({ minimum: 1, maximum: 255, description: 'Memory module slots' }),
  },
  { additionalProperties: false, title: 'DomainMaxMemory' },
);
export type DomainMaxMemory = Static<typeof DomainMaxMemory>;

/** Config fields shared by define (DomainsPost) and update (DomainPut). */
const configFields = {
  vcpus: Type.Integer({ minimum: 1, maximum: 256, description: 'Virtual CPUs' }),
  memory: Type.Integer({ minimum: 1, maximum: 4_194_304, description: 'Memory in MiB' }),
  os: DomainOs,
  disks: Type.Array(DomainDisk, { maxItems: 64 }),
  nics: Type.Array(DomainNic, { maxItems: 32 }),
  console: DomainConsole,
  graphics: DomainGraphics,
  autostart: Type.Boolean({ description: 'Start with the agent' }),
  container: DomainContainer,
  labels: Labels,
  cpu: DomainCpu,
  currentMemory: Type.Integer({ minimum: 1, maximum: 4_194_304, description: 'Balloon target in MiB at start (libvirt currentMemory; default: memory, the maximum)' }),
  numa: Type.Array(DomainNumaCell, { minItems: 1, maxItems: 16, description: 'Guest NUMA cells' }),
  devices: DomainDevices,
  memoryBacking: DomainMemoryBacking,
  maxMemory: DomainMaxMemory,
};

/** The VM-only config fields: optional in a define, an update and the stored config alike (one list for all three). */
const vmOnlyOptionalFields = {
  cpu: Type.Optional(configFields.cpu),
  currentMemory: Type.Optional(configFields.currentMemory),
  numa: Type.Optional(configFields.numa),
  devices: Type.Optional(configFields.devices),
  memoryBacking: Type.Optional(configFields.memoryBacking),
  maxMemory: Type.Optional(configFields.maxMemory),
};

/** The config fields a define or an update may leave out (labels differ in meaning between the two). */
const optionalConfigFields = {
  vcpus: Type.Optional(configFields.vcpus),
  memory: Type.Optional(configFields.memory),
  os: Type.Optional(configFields.os),
  disks: Type.Optional(configFields.disks),
  nics: Type.Optional(configFields.nics),
  console: Type.Optional(configFields.console),
  graphics: Type.Optional(configFields.graphics),
  autostart: Type.Optional(configFields.autostart),
  container: Type.Optional(configFields.container),
  ...vmOnlyOptionalFields,
};

export const DomainsPost = Type.Object(
  {
    name: ObjectName,
    uuid: Type.Optional(Uuid),
    driver: DomainDriver,
    ...optionalConfigFields,
    labels: Type.Optional(configFields.labels),
  },
  { additionalProperties: false, title: 'DomainsPost', description: 'Define a new persistent domain' },
);
export type DomainsPost = Static<typeof DomainsPost>;

export const DomainPut = Type.Object(
  {
    ...optionalConfigFields,
    labels: Type.Optional({ ...configFields.labels, description: 'Replaces every label at once (applies immediately)' }),
  },
  { additionalProperties: false, title: 'DomainPut', description: 'Replace the given config fields; they apply at next start (labels at once)' },
);
export type DomainPut = Static<typeof DomainPut>;

/** The full persistent configuration with every default filled in. */
export const DomainConfig = Type.Object(
  {
    name: ObjectName,
    uuid: Uuid,
    driver: DomainDriver,
    vcpus: configFields.vcpus,
    memory: configFields.memory,
    os: configFields.os,
    disks: configFields.disks,
    nics: configFields.nics,
    console: configFields.console,
    graphics: Type.Optional({ ...configFields.graphics, description: 'Absent: no graphical console' }),
    autostart: configFields.autostart,
    container: Type.Optional(configFields.container),
    labels: Type.Optional(configFields.labels),
    ...vmOnlyOptionalFields,
  },
  { additionalProperties: false, title: 'DomainConfig' },
);
export type DomainConfig = Static<typeof DomainConfig>;

/** How long shutdown and reboot wait for the guest when the caller gives no timeout. */
export const DEFAULT_STATE_TIMEOUT_S = 30;

export const DomainStateActions = ['start', 'shutdown', 'destroy', 'reboot', 'reset', 'suspend', 'resume'] as const;
export const DomainStatePut = Type.Object(
  {
    action: Type.Enum([...DomainStateActions]),
    timeout: Type.Optional(Type.Integer({ minimum: 0, maximum: 3600, description: 'Seconds to wait for shutdown/reboot (default 30)' })),
    force: Type.Optional(Type.Boolean({ description: 'shutdown: destroy when the timeout expires' })),
    paused: Type.Optional(Type.Boolean({ description: 'start: leave the vCPUs paused' })),
  },
  { additionalProperties: false, title: 'DomainStatePut' },
);
export type DomainStatePut = Static<typeof DomainStatePut>;

/** libvirt's taint flags a domain's view shows once a hypervisor-specific call reached around the agent's model of it. */
export const DomainTaint = Type.Enum(['custom-monitor', 'custom-namespace'], {
  description: "custom-monitor: a QMP passthrough command ran (libvirt's qemu-monitor-command); custom-namespace: a process entered its namespaces (lxc-enter-namespace)",
});
export type DomainTaint = Static<typeof DomainTaint>;

export const Domain = Type.Object(
  {
    uuid: Uuid,
    name: ObjectName,
    node: Type.String(),
    driver: DomainDriver,
    state: DomainState,
    reason: StateReason,
    persistent: Type.Boolean(),
    autostart: Type.Boolean(),
    config: DomainConfig,
    stateChangedAt: Type.String({ format: 'date-time' }),
    id: Type.Optional(
      Type.Integer({ minimum: 1, description: "virsh's domain id: a number the node gives the domain when it starts, unique on the node while it runs; absent when shut off" }),
    ),
    liveDisks: Type.Optional(Type.Array(LiveDisk, { description: 'Disks of the running domain, hotplugged ones included (absent when shut off)' })),
    hypervisor: Type.Optional(Type.String({ description: "Driver libvirt: the hypervisor libvirt reports for the node (qemu, xen, vz, test, …)" })),
    persistPending: Type.Optional(
      Type.Literal(true, {
        description:
          'The state shown happened but is not yet on disk (state dir full): the agent retries the write and publishes its events once it succeeds; other changes of the domain answer STORAGE_FULL until then',
      }),
    ),
    tainted: Type.Optional(
      Type.Array(DomainTaint, { description: "libvirt's taint flags of the running domain: a hypervisor-specific call ran since it started" }),
    ),
  },
  { additionalProperties: false, title: 'Domain' },
);
export type Domain = Static<typeof Domain>;

export const DomainList = Type.Object({ domains: Type.Array(Domain), ...PageResponseFields }, { additionalProperties: false, title: 'DomainList' });

/** domain.list: one page of the node's domains in (name, uuid) order, filtered; no fields = every domain that fits in one reply. */
export const DomainListRequest = Type.Object(
  {
    ...PageRequestFields,
    state: Type.Optional(DomainState),
    driver: Type.Optional(DomainDriver),
    prefix: Type.Optional(Type.String({ maxLength: 64, description: 'Only names starting with this' })),
    labelSelector: Type.Optional(LabelSelector),
  },
  { additionalProperties: false, title: 'DomainListRequest' },
);
export type DomainListRequest = Static<typeof DomainListRequest>;
export type DomainList = Static<typeof DomainList>;

/** One domain in the gateway's fleet index: what a fleet-wide list shows and filters on. */
export const FleetDomain = Type.Object(
  {
    node: Type.String(),
    uuid: Uuid,
    name: ObjectName,
    driver: DomainDriver,
    state: DomainState,
    reason: StateReason,
    labels: Type.Optional(Labels),
    stateChangedAt: Type.String({ format: 'date-time', description: "The agent's time of the last state change, or the time of the event that reported it" }),
  },
  { additionalProperties: false, title: 'FleetDomain' },
);
export type FleetDomain = Static<typeof FleetDomain>;

/** GET /v1/domains: the same filters and paging as domain.list, over every node the caller may see. */
export const FleetDomainListRequest = Type.Object(
  {
    ...DomainListRequest.properties,
    search: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'Only domains whose name, node or state contains this, in any case' })),
    sort: Type.Optional(
      Type.Enum(['node', 'name', 'driver', 'state'], {
        description: 'Order by this column, then node, name and uuid (absent: node, the default (node, name, uuid) order); a continue token holds its order',
      }),
    ),
    order: Type.Optional(Type.Enum(['asc', 'desc'], { description: 'asc (absent) or desc: every key of the order reversed' })),
  },
  { additionalProperties: false, title: 'FleetDomainListRequest' },
);
export type FleetDomainListRequest = Static<typeof FleetDomainListRequest>;

export const FleetDomainList = Type.Object(
  {
    domains: Type.Array(FleetDomain, { description: 'In (node, name, uuid) order' }),
    ...PageResponseFields,
    asOf: Type.String({ format: 'date-time', description: 'When the gateway answered from its fleet index' }),
    stale: Type.Optional(
      Type.Array(Type.String(), { description: 'Nodes whose entries are not current: not yet listed, being listed again after a missed event, or unreachable (last known entries shown)' }),
    ),
  },
  { additionalProperties: false, title: 'FleetDomainList' },
);
export type FleetDomainList = Static<typeof FleetDomainList>;

export const ExecRequest = Type.Object(
  {
    command: Type.Array(CommandArg, { minItems: 1, maxItems: 256 }),
    env: Type.Optional(Type.Record(EnvName, Type.String({ maxLength: 4096, pattern: '^[^\\x00\\n]*$' }))),
    timeout: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600, default: 60, description: 'Seconds before the command is killed' })),
  },
  { additionalProperties: false, title: 'DomainExecPost' },
);
export type ExecRequest = Static<typeof ExecRequest>;

export const ExecResult = Type.Object(
  {
    exitCode: Type.Integer(),
    stdout: Type.String({ description: 'UTF-8 output, truncated to 1 MiB' }),
    stderr: Type.String({ description: 'UTF-8 output, truncated to 1 MiB' }),
    timedOut: Type.Boolean(),
  },
  { additionalProperties: false, title: 'ExecResult' },
);
export type ExecResult = Static<typeof ExecResult>;

/** domain.xml: the definition libvirt holds for a domain of driver libvirt (read-only). */
export const DomainXml = Type.Object({ uuid: Uuid, name: ObjectName, xml: Type.String({ description: "libvirt's domain XML (virsh dumpxml)" }) }, { additionalProperties: false, title: 'DomainXml' });
export type DomainXml = Static<typeof DomainXml>;

/** Most domains one import call adopts (a reply stays far below max_payload); `remaining` says how many are left. */
export const DOMAIN_IMPORT_MAX = 100;
export const DomainImport = Type.Object(
  {
    domains: Type.Optional(
      Type.Array(Type.Union([Uuid, ObjectName]), { minItems: 1, maxItems: DOMAIN_IMPORT_MAX, uniqueItems: true, description: "Names or UUIDs of libvirt's domains; absent: every one the node does not know yet" }),
    ),
  },
  { additionalProperties: false, title: 'DomainImport', description: 'Adopt domains libvirtd already has (driver libvirt): running ones keep running, their XML stays the definition' },
);
export type DomainImport = Static<typeof DomainImport>;
export const DomainImportResult = Type.Object(
  {
    imported: Type.Array(Domain, { maxItems: DOMAIN_IMPORT_MAX }),
    remaining: Type.Integer({ minimum: 0, description: 'Domains left to import (call again)' }),
  },
  { additionalProperties: false, title: 'DomainImportResult' },
);
export type DomainImportResult = Static<typeof DomainImportResult>;

import { VirtError, type DomainConfig } from '@virtbus/api-contract';
import { join } from 'node:path';
import { qemuOptValue, type QemuAccel } from './command-line.js';

/** Debian's `ovmf` package: 4 MiB flash images; secure boot uses the SMM build with Microsoft keys enrolled. */
export const OVMF_DIR = '/usr/share/OVMF';
const OVMF_FILES = {
  plain: { code: 'OVMF_CODE_4M.fd', vars: 'OVMF_VARS_4M.fd' },
  secure: { code: 'OVMF_CODE_4M.secboot.fd', vars: 'OVMF_VARS_4M.ms.fd' },
} as const;

/** The read-only firmware code, the template NVRAM is copied from, and the domain's own NVRAM. */
export interface EfiFiles {
  code: string;
  varsTemplate: string;
  nvram: string;
  secure: boolean;
}

export function isEfi(config: DomainConfig): boolean {
  return config.os.firmware === 'efi';
}

/** The firmware files of an `efi` domain; its NVRAM is `<uuid>_VARS.fd` in `nvramDir` (libvirt's naming). */
export function efiFiles(config: DomainConfig, ovmfDir: string, nvramDir: string): EfiFiles {
  const secure = config.os.secureBoot === true;
  const files = secure ? OVMF_FILES.secure : OVMF_FILES.plain;
  return { code: join(ovmfDir, files.code), varsTemplate: join(ovmfDir, files.vars), nvram: nvramPath(nvramDir, config.uuid), secure };
}

export function nvramPath(nvramDir: string, uuid: string): string {
  return join(nvramDir, `${uuid}_VARS.fd`);
}

/** Guest vCPU topology: the boot count, the most hotplug may reach, and how they are laid out. */
export interface CpuTopology {
  vcpus: number;
  maxVcpus: number;
  sockets: number;
  cores: number;
  threads: number;
}

/** sockets*cores*threads is the maximum; without a topology every possible vCPU is its own socket (hotplug unit). */
export function cpuTopology(config: DomainConfig): CpuTopology {
  const cpu = config.cpu ?? {};
  const laidOut = cpu.sockets !== undefined || cpu.cores !== undefined || cpu.threads !== undefined;
  let topology: CpuTopology;
  if (laidOut) {
    const sockets = cpu.sockets ?? 1;
    const cores = cpu.cores ?? 1;
    const threads = cpu.threads ?? 1;
    const product = sockets * cores * threads;
    if (cpu.maxVcpus !== undefined && cpu.maxVcpus !== product) {
      throw new VirtError('INVALID_ARG', `cpu.maxVcpus ${cpu.maxVcpus} differs from sockets*cores*threads = ${product}`);
    }
    topology = { vcpus: config.vcpus, maxVcpus: product, sockets, cores, threads };
  } else {
    const maxVcpus = cpu.maxVcpus ?? config.vcpus;
    topology = { vcpus: config.vcpus, maxVcpus, sockets: maxVcpus, cores: 1, threads: 1 };
  }
  if (topology.maxVcpus > 256) throw new VirtError('INVALID_ARG', `at most 256 vCPUs, the topology gives ${topology.maxVcpus}`);
  if (config.vcpus > topology.maxVcpus) throw new VirtError('INVALID_ARG', `vcpus ${config.vcpus} exceeds the maximum ${topology.maxVcpus}`);
  return topology;
}

/** The `-cpu` model: host-model and host-passthrough need KVM (QEMU's TCG has no host CPU to copy); `max` is TCG's fullest model. */
export function cpuModelFor(config: DomainConfig, accel: QemuAccel, defaultModel: string): string {
  const model = config.cpu?.model;
  if (model === undefined) return defaultModel;
  if (model === 'host-model' || model === 'host-passthrough') {
    if (accel !== 'kvm') throw new VirtError('OPERATION_UNSUPPORTED', `cpu model ${model} needs a kvm domain; qemu (TCG) domains use max or a named model`);
    return model === 'host-passthrough' ? 'host' : defaultModel;
  }
  return model;
}

/** `0-1,4` → [0, 1, 4]. */
export function parseCpuList(list: string): number[] {
  return list.split(',').flatMap((part) => {
    const [from, to] = part.split('-').map(Number) as [number, number | undefined];
    const last = to ?? from;
    if (last < from) throw new VirtError('INVALID_ARG', `bad vCPU range ${part}`);
    return Array.from({ length: last - from + 1 }, (_, index) => from + index);
  });
}

/** Definition fields that only mean something for a virtual machine (a container or a libvirt domain ignores them). */
export function vmOnlyFields(config: DomainConfig): string[] {
  const fields: [string, unknown][] = [
    ['os.firmware efi', config.os.firmware === 'efi'],
    ['os.secureBoot', config.os.secureBoot],
    ['cpu', config.cpu],
    ['currentMemory', config.currentMemory],
    ['numa', config.numa],
    ['devices', config.devices],
    ['memoryBacking', config.memoryBacking],
    ['maxMemory', config.maxMemory],
  ];
  return fields.filter(([, value]) => value !== undefined && value !== false).map(([name]) => name);
}

/** Checks the definition's firmware, CPU, memory and NUMA fields; the same rules the command line renders by. */
export function validateMachine(config: DomainConfig): CpuTopology {
  if (config.os.secureBoot && !isEfi(config)) throw new VirtError('INVALID_ARG', 'os.secureBoot needs os.firmware efi');
  if (config.os.secureBoot && !/^(q35|pc-q35-)/.test(config.os.machine ?? 'pc')) throw new VirtError('INVALID_ARG', 'os.secureBoot needs machine q35 (SMM)');
  const topology = cpuTopology(config);
  if (config.currentMemory !== undefined && config.currentMemory > config.memory) {
    throw new VirtError('INVALID_ARG', `currentMemory ${config.currentMemory} MiB exceeds memory ${config.memory} MiB`);
  }
  if (config.maxMemory && config.maxMemory.memory < config.memory) throw new VirtError('INVALID_ARG', `maxMemory.memory ${config.maxMemory.memory} MiB is below memory ${config.memory} MiB`);
  if (config.numa) {
    const total = config.numa.reduce((sum, cell) => sum + cell.memory, 0);
    if (total !== config.memory) throw new VirtError('INVALID_ARG', `the NUMA cells have ${total} MiB, memory is ${config.memory} MiB`);
    const seen = new Set<number>();
    for (const cell of config.numa) {
      for (const id of parseCpuList(cell.cpus)) {
        if (id >= topology.maxVcpus) throw new VirtError('INVALID_ARG', `NUMA vCPU ${id} is beyond the maximum ${topology.maxVcpus}`);
        if (seen.has(id)) throw new VirtError('INVALID_ARG', `vCPU ${id} is in two NUMA cells`);
        seen.add(id);
      }
    }
  }
  deviceArgs(config);
  return topology;
}

/** -machine, firmware flash, -accel, -cpu, -smp, -m and NUMA cells of a domain. */
export function machineArgs(config: DomainConfig, options: { accel: QemuAccel; cpuModel: string; efi?: EfiFiles }): string[] {
  const topology = validateMachine(config);
  const args: string[] = [];
  let machine = qemuOptValue(config.os.machine ?? 'pc');
  if (isEfi(config)) {
    const efi = options.efi;
    if (!efi) throw new VirtError('INTERNAL', 'efi firmware files were not resolved');
    args.push(
      '-blockdev',
      `driver=file,node-name=ovmf-code-file,filename=${qemuOptValue(efi.code)},read-only=on`,
      '-blockdev',
      'driver=raw,node-name=ovmf-code,file=ovmf-code-file,read-only=on',
      '-blockdev',
      `driver=file,node-name=ovmf-vars-file,filename=${qemuOptValue(efi.nvram)},read-only=off`,
      '-blockdev',
      'driver=raw,node-name=ovmf-vars,file=ovmf-vars-file,read-only=off',
    );
    machine += ',pflash0=ovmf-code,pflash1=ovmf-vars';
    // secure boot's flash is writable only from SMM, so the guest OS cannot rewrite the key store
    if (efi.secure) {
      machine += ',smm=on';
      args.push('-global', 'driver=cfi.pflash01,property=secure,value=on');
    }
  }
  // huge pages: memfd on hugetlbfs needs no mount; without NUMA cells the machine's RAM is one such backend
  const hugepages = config.memoryBacking?.hugepages === true;
  const backend = (id: string, mib: number) => (hugepages ? `memory-backend-memfd,id=${id},size=${mib}M,hugetlb=on` : `memory-backend-ram,id=${id},size=${mib}M`);
  if (hugepages && !config.numa) {
    machine += ',memory-backend=ram0';
    args.push('-object', backend('ram0', config.memory));
  }
  args.push('-machine', machine, '-accel', options.accel, '-cpu', qemuOptValue(options.cpuModel));
  const { vcpus, maxVcpus, sockets, cores, threads } = topology;
  args.push('-smp', config.cpu === undefined ? String(vcpus) : `${vcpus},maxcpus=${maxVcpus},sockets=${sockets},cores=${cores},threads=${threads}`);
  args.push('-m', config.maxMemory ? `${config.memory}M,slots=${config.maxMemory.slots},maxmem=${config.maxMemory.memory}M` : `${config.memory}M`);
  config.numa?.forEach((cell, index) => {
    const cpus = cell.cpus.split(',').map((range) => `cpus=${range}`).join(',');
    args.push('-object', backend(`ram-node${index}`, cell.memory), '-numa', `node,nodeid=${index},${cpus},memdev=ram-node${index}`);
  });
  return args;
}

const USB_CONTROLLERS = { 'qemu-xhci': 'qemu-xhci', 'piix3-uhci': 'piix3-usb-uhci' } as const;
const INPUTS = {
  usb: { tablet: 'usb-tablet', mouse: 'usb-mouse', keyboard: 'usb-kbd' },
  virtio: { tablet: 'virtio-tablet-pci', mouse: 'virtio-mouse-pci', keyboard: 'virtio-keyboard-pci' },
} as const;

/** RNG, watchdog, USB controller and input devices. */
export function deviceArgs(config: DomainConfig): string[] {
  const devices = config.devices ?? {};
  const args: string[] = [];
  if (devices.rng) args.push('-object', `rng-random,id=rng0,filename=${devices.rng.source ?? '/dev/urandom'}`, '-device', 'virtio-rng-pci,rng=rng0,id=rng0dev');
  if (devices.watchdog) args.push('-device', `${devices.watchdog.model},id=watchdog0`, '-action', `watchdog=${devices.watchdog.action ?? 'reset'}`);
  if (devices.usb) args.push('-device', `${USB_CONTROLLERS[devices.usb.model]},id=usb0`);
  devices.inputs?.forEach((input, index) => {
    const bus = input.bus ?? 'usb';
    if (bus === 'usb' && !devices.usb) throw new VirtError('INVALID_ARG', `a usb ${input.type} needs devices.usb (a USB controller)`);
    args.push('-device', `${INPUTS[bus][input.type]},id=input${index}${bus === 'usb' ? ',bus=usb0.0' : ''}`);
  });
  return args;
}

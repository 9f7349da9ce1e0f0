import { describe, expect, it } from 'vitest';
import type { DomainConfig } from '@virtbus/api-contract';
import { testDomainConfig } from '@virtbus/testing';
import { buildCommandLine, qemuPaths } from './command-line.js';
import { cpuModelFor, cpuTopology, deviceArgs, efiFiles, parseCpuList, vmOnlyFields } from './machine.js';
import { hugepagesAvailable, requireHugepages } from './hugepages.js';

const base: DomainConfig = testDomainConfig({ name: 'm', uuid: '5d1c7a52-5a43-4d8f-9d55-0f0e6b1c2a11', driver: 'qemu', vcpus: 2, memory: 512 });
const paths = qemuPaths('/run/vb/m');
const efiOf = (config: DomainConfig) => efiFiles(config, '/usr/share/OVMF', '/state/nvram');
const build = (config: Partial<DomainConfig>) => {
  const full = { ...base, ...config };
  return buildCommandLine(full, paths, { accel: 'tcg', cpuModel: 'max', ...(full.os.firmware === 'efi' ? { efi: efiOf(full) } : {}) });
};
const values = (args: string[], flag: string) => args.flatMap((arg, index) => (arg === flag ? [args[index + 1]] : []));

describe('firmware', () => {
  it('boots SeaBIOS by default: no flash devices', () => {
    const args = build({});
    expect(values(args, '-machine')).toEqual(['pc']);
    expect(values(args, '-blockdev')).toEqual([]);
  });

  it('maps OVMF code read-only and the per-domain NVRAM writable onto the machine flash', () => {
    const args = build({ os: { firmware: 'efi', machine: 'q35' } });
    expect(values(args, '-machine')).toEqual(['q35,pflash0=ovmf-code,pflash1=ovmf-vars']);
    expect(values(args, '-blockdev')).toEqual([
      'driver=file,node-name=ovmf-code-file,filename=/usr/share/OVMF/OVMF_CODE_4M.fd,read-only=on',
      'driver=raw,node-name=ovmf-code,file=ovmf-code-file,read-only=on',
      `driver=file,node-name=ovmf-vars-file,filename=/state/nvram/${base.uuid}_VARS.fd,read-only=off`,
      'driver=raw,node-name=ovmf-vars,file=ovmf-vars-file,read-only=off',
    ]);
    expect(efiOf({ ...base, os: { firmware: 'efi' } }).varsTemplate).toBe('/usr/share/OVMF/OVMF_VARS_4M.fd');
  });

  it('secure boot: the SMM build, enrolled keys, flash writable from SMM only; needs efi and q35', () => {
    const args = build({ os: { firmware: 'efi', machine: 'q35', secureBoot: true } });
    expect(values(args, '-machine')).toEqual(['q35,pflash0=ovmf-code,pflash1=ovmf-vars,smm=on']);
    expect(values(args, '-global')).toEqual(['driver=cfi.pflash01,property=secure,value=on']);
    expect(values(args, '-blockdev')[0]).toContain('OVMF_CODE_4M.secboot.fd');
    expect(efiOf({ ...base, os: { firmware: 'efi', secureBoot: true } }).varsTemplate).toBe('/usr/share/OVMF/OVMF_VARS_4M.ms.fd');
    expect(() => build({ os: { secureBoot: true, machine: 'q35' } })).toThrow(/needs os.firmware efi/);
    expect(() => build({ os: { firmware: 'efi', secureBoot: true } })).toThrow(/needs machine q35/);
  });
});

describe('CPU and memory', () => {
  it('keeps a plain -smp without cpu settings, and spells out the topology with them', () => {
    expect(values(build({}), '-smp')).toEqual(['2']);
    expect(values(build({ cpu: { maxVcpus: 4 } }), '-smp')).toEqual(['2,maxcpus=4,sockets=4,cores=1,threads=1']);
    expect(values(build({ cpu: { sockets: 2, cores: 2, threads: 2 } }), '-smp')).toEqual(['2,maxcpus=8,sockets=2,cores=2,threads=2']);
  });

  it('refuses topologies that do not add up', () => {
    expect(() => cpuTopology({ ...base, cpu: { sockets: 2, cores: 2, maxVcpus: 3 } })).toThrow(/differs/);
    expect(() => cpuTopology({ ...base, vcpus: 4, cpu: { maxVcpus: 2 } })).toThrow(/exceeds/);
    expect(() => cpuTopology({ ...base, cpu: { sockets: 16, cores: 16, threads: 2 } })).toThrow(/at most 256/);
  });

  it('picks the CPU model: named and max verbatim, host models only under KVM', () => {
    expect(cpuModelFor(base, 'tcg', 'max')).toBe('max');
    expect(cpuModelFor({ ...base, cpu: { model: 'Haswell-noTSX' } }, 'tcg', 'max')).toBe('Haswell-noTSX');
    expect(cpuModelFor({ ...base, cpu: { model: 'host-passthrough' } }, 'kvm', 'qemu64')).toBe('host');
    expect(cpuModelFor({ ...base, cpu: { model: 'host-model' } }, 'kvm', 'qemu64')).toBe('qemu64');
    expect(() => cpuModelFor({ ...base, cpu: { model: 'host-model' } }, 'tcg', 'max')).toThrow(/needs a kvm domain/);
  });

  it('renders NUMA cells as RAM backends with their vCPUs; the cells must add up to memory', () => {
    const args = build({ cpu: { maxVcpus: 4 }, numa: [{ cpus: '0-1', memory: 256 }, { cpus: '2,3', memory: 256 }] });
    expect(values(args, '-object')).toEqual(['memory-backend-ram,id=ram-node0,size=256M', 'memory-backend-ram,id=ram-node1,size=256M']);
    expect(values(args, '-numa')).toEqual(['node,nodeid=0,cpus=0-1,memdev=ram-node0', 'node,nodeid=1,cpus=2,cpus=3,memdev=ram-node1']);
    expect(() => build({ numa: [{ cpus: '0-1', memory: 128 }] })).toThrow(/128 MiB, memory is 512/);
    expect(() => build({ numa: [{ cpus: '0-2', memory: 512 }] })).toThrow(/beyond the maximum/);
    expect(() => build({ numa: [{ cpus: '0', memory: 256 }, { cpus: '0', memory: 256 }] })).toThrow(/two NUMA cells/);
    expect(parseCpuList('0-2,5')).toEqual([0, 1, 2, 5]);
  });

  it('refuses a balloon target above the maximum', () => {
    expect(() => build({ currentMemory: 1024 })).toThrow(/exceeds memory/);
    expect(values(build({ currentMemory: 256 }), '-m')).toEqual(['512M']);
  });

  it('names the VM-only fields a container cannot honour', () => {
    expect(vmOnlyFields(base)).toEqual([]);
    expect(vmOnlyFields({ ...base, os: { firmware: 'bios' } })).toEqual([]);
    expect(vmOnlyFields({ ...base, os: { firmware: 'efi' }, cpu: {}, numa: [{ cpus: '0', memory: 1 }], devices: {} })).toEqual(['os.firmware efi', 'cpu', 'numa', 'devices']);
    expect(vmOnlyFields({ ...base, memoryBacking: { hugepages: true }, maxMemory: { memory: 1024, slots: 1 } })).toEqual(['memoryBacking', 'maxMemory']);
  });
});

describe('devices', () => {
  it('renders virtio-rng, a watchdog with its action, a USB controller and input devices', () => {
    const args = deviceArgs({
      ...base,
      devices: {
        rng: { model: 'virtio' },
        watchdog: { model: 'i6300esb', action: 'pause' },
        usb: { model: 'qemu-xhci' },
        inputs: [{ type: 'tablet' }, { type: 'keyboard', bus: 'virtio' }],
      },
    });
    expect(values(args, '-object')).toEqual(['rng-random,id=rng0,filename=/dev/urandom']);
    expect(values(args, '-action')).toEqual(['watchdog=pause']);
    expect(values(args, '-device')).toEqual(['virtio-rng-pci,rng=rng0,id=rng0dev', 'i6300esb,id=watchdog0', 'qemu-xhci,id=usb0', 'usb-tablet,id=input0,bus=usb0.0', 'virtio-keyboard-pci,id=input1']);
    expect(deviceArgs(base)).toEqual([]);
    expect(() => build({ devices: { inputs: [{ type: 'mouse' }] } })).toThrow(/needs devices.usb/);
  });
});

describe('TPM and huge pages', () => {
  it('gives a TPM device the swtpm socket of the domain as its emulator backend', () => {
    const args = build({ devices: { tpm: { model: 'tpm-crb' } } });
    expect(values(args, '-tpmdev')).toEqual(['emulator,id=tpm0,chardev=chrtpm']);
    expect(values(args, '-chardev')).toContain(`socket,id=chrtpm,path=${paths.tpmSocket}`);
    expect(values(args, '-device')).toContain('tpm-crb,tpmdev=tpm0,id=tpm0dev');
    expect(values(build({}), '-tpmdev')).toEqual([]);
  });

  it('backs memory with hugetlb memfd: the machine RAM, or each NUMA cell', () => {
    const plain = build({ memoryBacking: { hugepages: true } });
    expect(values(plain, '-machine')).toEqual(['pc,memory-backend=ram0']);
    expect(values(plain, '-object')).toEqual(['memory-backend-memfd,id=ram0,size=512M,hugetlb=on']);
    const cells = build({ memoryBacking: { hugepages: true }, numa: [{ cpus: '0', memory: 256 }, { cpus: '1', memory: 256 }] });
    expect(values(cells, '-machine')).toEqual(['pc']);
    expect(values(cells, '-object')).toEqual(['memory-backend-memfd,id=ram-node0,size=256M,hugetlb=on', 'memory-backend-memfd,id=ram-node1,size=256M,hugetlb=on']);
  });

  it('refuses to start a hugepages domain without enough free pages, naming what it needs', () => {
    const meminfo = (free: number, reserved: number) => `HugePages_Total:     512\nHugePages_Free:      ${free}\nHugePages_Rsvd:      ${reserved}\nHugepagesize:       2048 kB\n`;
    const config = { ...base, memoryBacking: { hugepages: true } };
    expect(hugepagesAvailable(meminfo(300, 100))).toEqual({ pages: 200, pageKiB: 2048 });
    expect(() => requireHugepages(config, meminfo(300, 100))).toThrow(/needs 256 huge pages of 2048 kB, the host has 200 free/);
    expect(() => requireHugepages(config, meminfo(256, 0))).not.toThrow();
    expect(() => requireHugepages(base, meminfo(0, 0))).not.toThrow();
  });
});

describe('memory module slots', () => {
  it('gives -m its slots and maximum; the maximum covers the boot memory', () => {
    expect(values(build({ maxMemory: { memory: 1024, slots: 2 } }), '-m')).toEqual(['512M,slots=2,maxmem=1024M']);
    expect(values(build({}), '-m')).toEqual(['512M']);
    expect(() => build({ maxMemory: { memory: 256, slots: 1 } })).toThrow(/below memory/);
  });
});

import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { VirtError, type DomainConfig, type DomainDisk, type DomainNic } from '@virtbus/api-contract';
import { diskBootIndexes } from './boot-order.js';
import { deviceArgs, machineArgs, type EfiFiles } from './machine.js';
import { tpmArgs } from './tpm.js';

export const QemuAccels = { kvm: 'kvm', tcg: 'tcg' } as const;
export type QemuAccel = (typeof QemuAccels)[keyof typeof QemuAccels];

/** Files of one running domain, all inside its runtime directory. */
export interface QemuPaths {
  runDir: string;
  qmpSocket: string;
  consoleSocket: string;
  consoleLog: string;
  /** QEMU's VNC server (domains with graphics): a unix socket, never a TCP port. */
  vncSocket: string;
  /** Where screendump writes before the driver reads it back. */
  screenshot: string;
  pidFile: string;
  qemuLog: string;
  /** The guest agent's virtio-serial channel (org.qemu.guest_agent.0), served by QEMU. */
  qgaSocket: string;
  /** The domain's swtpm: its control socket (QEMU's TPM backend), `{pid, startTime}` and log. */
  tpmSocket: string;
  tpmPidFile: string;
  tpmLog: string;
}

export interface CommandLineOptions {
  accel: QemuAccel;
  cpuModel: string;
  /** Firmware files of an `efi` domain. */
  efi?: EfiFiles;
  /** Host tap device per NIC index, for `network` and `bridge` NICs. */
  taps?: ReadonlyMap<number, string>;
}

export function qemuPaths(runDir: string): QemuPaths {
  return {
    runDir,
    qmpSocket: join(runDir, 'qmp.sock'),
    consoleSocket: join(runDir, 'console.sock'),
    consoleLog: join(runDir, 'console.log'),
    vncSocket: join(runDir, 'vnc.sock'),
    screenshot: join(runDir, 'screen.png'),
    pidFile: join(runDir, 'qemu.pid'),
    qemuLog: join(runDir, 'qemu.log'),
    qgaSocket: join(runDir, 'qga.sock'),
    tpmSocket: join(runDir, 'swtpm.sock'),
    tpmPidFile: join(runDir, 'swtpm.json'),
    tpmLog: join(runDir, 'swtpm.log'),
  };
}

/** QEMU's option syntax splits on commas; a literal comma inside a value is written twice. */
export function qemuOptValue(value: string): string {
  return value.replaceAll(',', ',,');
}

/** Accelerator for a domain type: `kvm` domains use KVM, `qemu` domains TCG. */
export function accelFor(config: DomainConfig): QemuAccel {
  return config.driver === 'kvm' ? QemuAccels.kvm : QemuAccels.tcg;
}

/** A stable locally administered MAC in QEMU's 52:54:00 range, derived from the domain and NIC index. */
export function macFor(uuid: string, index: number): string {
  const digest = createHash('sha256').update(`${uuid.toLowerCase()}/${index}`).digest();
  return ['52', '54', '00', ...[...digest.subarray(0, 3)].map((byte) => byte.toString(16).padStart(2, '0'))].join(':');
}

const NIC_MODELS: Record<NonNullable<DomainNic['model']>, string> = { virtio: 'virtio-net-pci', e1000: 'e1000', rtl8139: 'rtl8139' };
const BOOT_DEVICES = { hd: 'c', cdrom: 'd', network: 'n' } as const;
const TARGET_PREFIX: Record<NonNullable<DomainDisk['bus']>, string> = { virtio: 'vd', sata: 'sd', ide: 'hd' };

/** Guest device names for every disk: the configured target or the next free one on its bus. */
export function diskTargets(disks: readonly DomainDisk[]): string[] {
  const used = new Set(disks.map((disk) => disk.target).filter((target): target is string => target !== undefined));
  if (used.size !== disks.filter((disk) => disk.target !== undefined).length) throw new VirtError('INVALID_ARG', 'two disks have the same target');
  return disks.map((disk) => {
    if (disk.target) return disk.target;
    const prefix = TARGET_PREFIX[disk.bus ?? 'virtio'];
    for (let index = 0; index < 26 * 27; index++) {
      const suffix = index < 26 ? String.fromCharCode(97 + index) : String.fromCharCode(96 + Math.floor(index / 26)) + String.fromCharCode(97 + (index % 26));
      const candidate = `${prefix}${suffix}`;
      if (!used.has(candidate)) {
        used.add(candidate);
        return candidate;
      }
    }
    throw new VirtError('INVALID_ARG', 'too many disks');
  });
}

function diskArgs(disk: DomainDisk, target: string, sataIndex: () => number, bootIndex?: number): string[] {
  // The agent resolves pool volumes to paths before start.
  if (!('path' in disk.source)) throw new VirtError('INTERNAL', `disk ${target}: its pool volume was not resolved to a path`);
  const readOnly = disk.readonly === true || disk.device === 'cdrom' ? 'on' : 'off';
  const fileNode = `file-${target}`;
  const formatNode = `fmt-${target}`;
  const args = [
    '-blockdev',
    `driver=file,node-name=${fileNode},filename=${qemuOptValue(disk.source.path)},read-only=${readOnly}`,
    '-blockdev',
    `driver=${disk.format ?? 'qcow2'},node-name=${formatNode},file=${fileNode},read-only=${readOnly}`,
  ];
  const bus = disk.bus ?? 'virtio';
  const boot = bootIndex === undefined ? '' : `,bootindex=${bootIndex}`;
  if (bus === 'virtio') {
    if (disk.device === 'cdrom') throw new VirtError('INVALID_ARG', `disk ${target}: a cdrom cannot sit on the virtio bus`);
    args.push('-device', `virtio-blk-pci,drive=${formatNode},id=${target}${boot}`);
  } else {
    const model = disk.device === 'cdrom' ? 'ide-cd' : 'ide-hd';
    const placement = bus === 'sata' ? `,bus=sata0.${sataIndex()}` : '';
    args.push('-device', `${model},drive=${formatNode},id=${target}${placement}${boot}`);
  }
  return args;
}

/** The whole QEMU command line (without the binary) for a domain: one place, pure, unit-tested. */
export function buildCommandLine(config: DomainConfig, paths: QemuPaths, options: CommandLineOptions): string[] {
  const args = [
    '-name',
    `guest=${qemuOptValue(config.name)},debug-threads=on`,
    '-uuid',
    config.uuid,
    ...machineArgs(config, options),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    // Start with vCPUs stopped so QMP and the console are attached before the guest prints anything.
    '-S',
    // A guest poweroff pauses QEMU instead of exiting, so the driver sees SHUTDOWN and can fake a reboot.
    '-no-shutdown',
    '-action',
    'panic=pause',
    '-msg',
    'timestamp=on',
    '-pidfile',
    paths.pidFile,
    '-chardev',
    `socket,id=qmp,path=${qemuOptValue(paths.qmpSocket)},server=on,wait=off`,
    '-mon',
    'chardev=qmp,mode=control',
  ];
  if (config.console.type === 'serial') {
    args.push(
      '-chardev',
      `socket,id=serial0,path=${qemuOptValue(paths.consoleSocket)},server=on,wait=off,logfile=${qemuOptValue(paths.consoleLog)},logappend=on`,
      '-serial',
      'chardev:serial0',
    );
  }
  if (config.graphics?.type === 'vnc') {
    // -nodefaults dropped the default VGA; VNC clients may share the server, one may ask for it alone
    args.push('-device', config.graphics.video === 'virtio' ? 'virtio-vga,id=video0' : 'VGA,id=video0', '-vnc', `unix:${qemuOptValue(paths.vncSocket)},share=allow-exclusive${config.graphics.password ? ',password=on' : ''}`);
  }
  if (config.os.kernel) {
    args.push('-kernel', config.os.kernel);
    if (config.os.initrd) args.push('-initrd', config.os.initrd);
    if (config.os.cmdline) args.push('-append', config.os.cmdline);
  } else if (config.os.initrd || config.os.cmdline) {
    throw new VirtError('INVALID_ARG', 'os.initrd and os.cmdline need os.kernel');
  }
  if (config.os.boot?.length) args.push('-boot', `order=${config.os.boot.map((device) => BOOT_DEVICES[device]).join('')}`);

  const targets = diskTargets(config.disks);
  if (config.disks.some((disk) => disk.bus === 'sata')) args.push('-device', 'ich9-ahci,id=sata0');
  let sataPorts = 0;
  const bootIndexes = diskBootIndexes(config);
  config.disks.forEach((disk, index) => args.push(...diskArgs(disk, targets[index] as string, () => sataPorts++, bootIndexes[index])));

  config.nics.forEach((nic, index) => {
    if (nic.type === 'none') return;
    const mac = nic.mac ?? macFor(config.uuid, index);
    let netdev = `user,id=net${index}`;
    if (nic.type !== 'user') {
      const tap = options.taps?.get(index);
      if (!tap) throw new VirtError('INTERNAL', `NIC ${index} (${nic.type}) has no tap device`);
      netdev = `tap,id=net${index},ifname=${tap},script=no,downscript=no`;
    }
    args.push('-netdev', netdev, '-device', `${NIC_MODELS[nic.model ?? 'virtio']},netdev=net${index},id=nic${index},mac=${mac}`);
  });

  args.push('-device', 'virtio-balloon-pci,id=balloon0', '-device', 'pvpanic', ...deviceArgs(config), ...tpmArgs(config, paths));
  // the guest agent channel: qemu-ga in the guest opens the port, the driver connects to the socket per call
  args.push(
    '-device',
    'virtio-serial-pci,id=virtio-serial0',
    '-chardev',
    `socket,id=qga0,path=${qemuOptValue(paths.qgaSocket)},server=on,wait=off`,
    '-device',
    // an id, as libvirt's channel0: QEMU sends VSERPORT_CHANGE (AGENT_LIFECYCLE) only for ports that have one
    'virtserialport,bus=virtio-serial0.0,chardev=qga0,id=channel0,name=org.qemu.guest_agent.0',
  );
  return args;
}

import { describe, expect, it } from 'vitest';
import type { DomainConfig } from '@virtbus/api-contract';
import { VirtError } from '@virtbus/api-contract';
import { accelFor, buildCommandLine, diskTargets, macFor, qemuOptValue, qemuPaths } from './command-line.js';
import { testDomainConfig } from '@virtbus/testing';

const base: DomainConfig = testDomainConfig({
  name: 'web-1',
  uuid: '0b7e0c9a-1c4e-4d55-9a51-0a3c3f1e2b77',
  driver: 'qemu',
  vcpus: 2,
  memory: 256,
});
const paths = qemuPaths('/run/vb/0b7e0c9a');
const build = (config: Partial<DomainConfig>, accel: 'kvm' | 'tcg' = 'tcg') => buildCommandLine({ ...base, ...config }, paths, { accel, cpuModel: accel === 'kvm' ? 'qemu64' : 'max' });
/** The value following each occurrence of `flag`. */
const values = (args: string[], flag: string) => args.flatMap((arg, index) => (arg === flag ? [args[index + 1]] : []));

describe('qemuOptValue', () => {
  it('doubles commas and leaves everything else alone', () => {
    expect(qemuOptValue('a,b,,c')).toBe('a,,b,,,,c');
    expect(qemuOptValue('/plain/path=x')).toBe('/plain/path=x');
  });
});

describe('buildCommandLine', () => {
  it('picks the accelerator from the domain type', () => {
    expect(accelFor({ ...base, driver: 'kvm' })).toBe('kvm');
    expect(accelFor(base)).toBe('tcg');
    expect(values(build({}, 'kvm'), '-accel')).toEqual(['kvm']);
    expect(values(build({}, 'kvm'), '-cpu')).toEqual(['qemu64']);
    expect(values(build({}), '-accel')).toEqual(['tcg']);
  });

  it('sets machine, vcpus, memory, uuid and the options that keep QEMU observable', () => {
    const args = build({ os: { machine: 'q35' } });
    expect(values(args, '-machine')).toEqual(['q35']);
    expect(values(args, '-smp')).toEqual(['2']);
    expect(values(args, '-m')).toEqual(['256M']);
    expect(values(args, '-uuid')).toEqual([base.uuid]);
    expect(args).toContain('-S');
    expect(args).toContain('-no-shutdown');
    expect(args).toContain('-nodefaults');
    expect(values(args, '-pidfile')).toEqual([paths.pidFile]);
    expect(values(args, '-chardev')).toContain(`socket,id=qmp,path=${paths.qmpSocket},server=on,wait=off`);
    expect(values(args, '-mon')).toEqual(['chardev=qmp,mode=control']);
    expect(values(build({}), '-machine')).toEqual(['pc']);
  });

  it('escapes commas in the name and in socket paths', () => {
    const args = buildCommandLine({ ...base, name: 'a,b' }, qemuPaths('/tmp/x,y'), { accel: 'tcg', cpuModel: 'max' });
    expect(values(args, '-name')).toEqual(['guest=a,,b,debug-threads=on']);
    expect(values(args, '-chardev')).toContain('socket,id=qmp,path=/tmp/x,,y/qmp.sock,server=on,wait=off');
    expect(values(args, '-chardev')).toContain(
      'socket,id=serial0,path=/tmp/x,,y/console.sock,server=on,wait=off,logfile=/tmp/x,,y/console.log,logappend=on',
    );
  });

  it('connects the serial console to a socket with a log file, or leaves it out', () => {
    expect(values(build({}), '-serial')).toEqual(['chardev:serial0']);
    const none = build({ console: { type: 'none' } });
    expect(none).not.toContain('-serial');
    expect(values(none, '-chardev').map((chardev) => String(chardev).split(',')[1])).toEqual(['id=qmp', 'id=qga0']);
  });

  it('gives every domain a guest agent channel on a unix socket in its runtime directory', () => {
    const args = build({});
    expect(values(args, '-chardev')).toContain(`socket,id=qga0,path=${paths.qgaSocket},server=on,wait=off`);
    expect(values(args, '-device')).toContain('virtserialport,bus=virtio-serial0.0,chardev=qga0,id=channel0,name=org.qemu.guest_agent.0');
  });

  it('boots a kernel directly; -append is passed verbatim (not an option list)', () => {
    const args = build({ os: { kernel: '/g/vmlinuz', initrd: '/g/initrd', cmdline: 'console=ttyS0 a=b,c' } });
    expect(values(args, '-kernel')).toEqual(['/g/vmlinuz']);
    expect(values(args, '-initrd')).toEqual(['/g/initrd']);
    expect(values(args, '-append')).toEqual(['console=ttyS0 a=b,c']);
    expect(() => build({ os: { cmdline: 'x' } })).toThrow(VirtError);
  });

  it('maps the boot order', () => {
    expect(values(build({ os: { boot: ['cdrom', 'hd', 'network'] } }), '-boot')).toEqual(['order=dcn']);
    expect(build({})).not.toContain('-boot');
  });

  it('adds file-backed disks as blockdev nodes with a device per disk', () => {
    const args = build({
      disks: [
        { source: { path: '/img/root,1.qcow2' } },
        { source: { path: '/img/data.raw' }, format: 'raw', readonly: true },
        { source: { path: '/img/cd.iso' }, device: 'cdrom', bus: 'ide', format: 'raw' },
        { source: { path: '/img/s.qcow2' }, bus: 'sata', target: 'sdb' },
      ],
    });
    expect(values(args, '-blockdev')).toEqual([
      'driver=file,node-name=file-vda,filename=/img/root,,1.qcow2,read-only=off',
      'driver=qcow2,node-name=fmt-vda,file=file-vda,read-only=off',
      'driver=file,node-name=file-vdb,filename=/img/data.raw,read-only=on',
      'driver=raw,node-name=fmt-vdb,file=file-vdb,read-only=on',
      'driver=file,node-name=file-hda,filename=/img/cd.iso,read-only=on',
      'driver=raw,node-name=fmt-hda,file=file-hda,read-only=on',
      'driver=file,node-name=file-sdb,filename=/img/s.qcow2,read-only=off',
      'driver=qcow2,node-name=fmt-sdb,file=file-sdb,read-only=off',
    ]);
    expect(values(args, '-device')).toEqual(
      expect.arrayContaining([
        'ich9-ahci,id=sata0',
        'virtio-blk-pci,drive=fmt-vda,id=vda',
        'virtio-blk-pci,drive=fmt-vdb,id=vdb',
        'ide-cd,drive=fmt-hda,id=hda',
        'ide-hd,drive=fmt-sdb,id=sdb,bus=sata0.0',
      ]),
    );
  });

  it('refuses unresolved pool volumes and cdroms on virtio', () => {
    expect(() => build({ disks: [{ source: { pool: 'p', volume: 'v' } }] })).toThrow(/not resolved/);
    expect(() => build({ disks: [{ source: { path: '/a.iso' }, device: 'cdrom' }] })).toThrow(/virtio/);
  });

  it('adds user-mode NICs with stable MACs, and taps for network/bridge NICs', () => {
    const args = build({ nics: [{ type: 'user' }, { type: 'none' }, { type: 'user', model: 'e1000', mac: '52:54:00:aa:bb:cc' }] });
    expect(values(args, '-netdev')).toEqual(['user,id=net0', 'user,id=net2']);
    expect(values(args, '-device')).toEqual(
      expect.arrayContaining([`virtio-net-pci,netdev=net0,id=nic0,mac=${macFor(base.uuid, 0)}`, 'e1000,netdev=net2,id=nic2,mac=52:54:00:aa:bb:cc']),
    );
    expect(() => build({ nics: [{ type: 'network', source: 'default' }] })).toThrow(/no tap/);
    const tapped = buildCommandLine({ ...base, nics: [{ type: 'network', source: 'default' }] } as DomainConfig, qemuPaths('/run/x'), { accel: 'tcg', cpuModel: 'max', taps: new Map([[0, 'vbabcdef01n0']]) });
    expect(values(tapped, '-netdev')).toEqual(['tap,id=net0,ifname=vbabcdef01n0,script=no,downscript=no']);
  });
});

describe('diskTargets / macFor', () => {
  it('assigns the next free name per bus and rejects duplicates', () => {
    expect(diskTargets([{ source: { path: '/a' }, target: 'vda' }, { source: { path: '/b' } }, { source: { path: '/c' }, bus: 'ide' }])).toEqual(['vda', 'vdb', 'hda']);
    expect(() => diskTargets([{ source: { path: '/a' }, target: 'vda' }, { source: { path: '/b' }, target: 'vda' }])).toThrow(/same target/);
  });

  it('derives a stable 52:54:00 MAC', () => {
    expect(macFor(base.uuid, 0)).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    expect(macFor(base.uuid, 0)).toBe(macFor(base.uuid.toUpperCase(), 0));
    expect(macFor(base.uuid, 0)).not.toBe(macFor(base.uuid, 1));
  });

  it('gives a graphics domain a video card and a VNC server on a unix socket only (never TCP)', () => {
    expect(values(build({}), '-vnc')).toEqual([]);
    expect(values(build({ graphics: { type: 'none' } }), '-vnc')).toEqual([]);
    const std = build({ graphics: { type: 'vnc' } });
    expect(values(std, '-vnc')).toEqual([`unix:${paths.vncSocket},share=allow-exclusive`]);
    expect(values(std, '-device')).toContain('VGA,id=video0');
    expect(values(build({ graphics: { type: 'vnc', video: 'virtio' } }), '-device')).toContain('virtio-vga,id=video0');
  });

  it('asks for VNC authentication when a password is set, without the password on the command line (QMP set_password sends it)', () => {
    const args = build({ graphics: { type: 'vnc', password: 'sekrit' } });
    expect(values(args, '-vnc')).toEqual([`unix:${paths.vncSocket},share=allow-exclusive,password=on`]);
    expect(args.join(' ')).not.toContain('sekrit');
  });
});

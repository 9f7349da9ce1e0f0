import { describe, expect, it } from 'vitest';
import { configFromDomainXml } from './domain-xml.js';

describe('configFromDomainXml', () => {
  it("reads disks, NICs and a VNC display from libvirt's XML as virtbus config (what it cannot hold stays in libvirt's XML)", () => {
    const xml = `<domain type='kvm'><name>a</name><devices>
      <emulator>/usr/bin/qemu-system-x86_64</emulator>
      <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/var/lib/a&amp;b.qcow2'/><backingStore type='file'><source file='/base.qcow2'/></backingStore><target dev='vda' bus='virtio'/></disk>
      <disk type="block" device="cdrom"><driver name="qemu" type="raw"/><source dev="/dev/sr0"/><target dev="sda" bus="sata"/><readonly/></disk>
      <disk type='volume' device='disk'><driver name='qemu' type='vmdk'/><source pool='images' volume='v1'/><target dev='sdb' bus='scsi'/></disk>
      <disk type='network' device='disk'><source protocol='rbd' name='pool/img'/><target dev='vdc' bus='virtio'/></disk>
      <disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><readonly/></disk>
      <disk type='file' device='floppy'><source file='/f.img'/><target dev='fda' bus='fdc'/></disk>
      <interface type='network'><mac address='52:54:00:12:34:56'/><source network='default'/><model type='e1000'/></interface>
      <interface type='bridge'><mac address='52:54:00:12:34:57'/><source bridge='br0'/><target dev='vnet0'/><model type='virtio'/></interface>
      <interface type='user'><model type='ne2k_pci'/></interface>
      <interface type='direct'><source dev='eth0' mode='bridge'/></interface>
      <graphics type='spice' autoport='yes'/>
      <graphics type='vnc' port='-1' autoport='yes'><listen type='address' address='127.0.0.1'/></graphics>
      <video><model type='virtio' heads='1' primary='yes'/></video>
    </devices></domain>`;
    expect(configFromDomainXml(xml)).toEqual({
      disks: [
        { source: { path: '/var/lib/a&b.qcow2' }, device: 'disk', format: 'qcow2', bus: 'virtio', target: 'vda' },
        { source: { path: '/dev/sr0' }, device: 'cdrom', format: 'raw', bus: 'sata', target: 'sda', readonly: true },
      ],
      nics: [
        { type: 'network', source: 'default', mac: '52:54:00:12:34:56', model: 'e1000' },
        { type: 'bridge', source: 'br0', mac: '52:54:00:12:34:57', model: 'virtio' },
        { type: 'user' },
      ],
      graphics: { type: 'vnc', video: 'virtio' },
    });
    expect(configFromDomainXml("<domain type='test'><name>b</name><devices/></domain>")).toEqual({ disks: [], nics: [] });
  });
});

import { describe, expect, it } from 'vitest';
import { configFromDomainXml, deviceElement, diskSourceOf, diskTargetOf, diskXml, macOf, nicXml } from './domain-xml.js';

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

describe('device XML for hotplug', () => {
  it('renders a disk and a NIC as the define does, and finds a live device by target or MAC as libvirt wrote it', () => {
    expect(diskXml({ source: { path: "/d/a'b.img" }, format: 'raw', readonly: true }, 'vdz')).toBe(
      "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/d/a&#39;b.img'/><target dev='vdz' bus='virtio'/><readonly/></disk>",
    );
    expect(diskXml({ source: { pool: 'p', volume: 'v' } }, 'vdb')).toBe("<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/><source pool='p' volume='v'/><target dev='vdb' bus='virtio'/></disk>");
    expect(nicXml({ type: 'bridge', source: 'br0' }, '52:54:00:aa:bb:cc')).toBe("<interface type='bridge'><source bridge='br0'/><mac address='52:54:00:aa:bb:cc'/><model type='virtio'/></interface>");
    const live = `<domain><devices>
      <disk type='file' device='disk'><source file='/top.qcow2' index='2'/><backingStore type='file' index='3'><source file='/base.qcow2'/></backingStore><target dev='vda' bus='virtio'/></disk>
      <disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><readonly/></disk>
      <interface type='user'><mac address='52:54:00:AA:BB:CC'/><model type='virtio'/><alias name='net0'/></interface>
    </devices></domain>`;
    const vda = deviceElement(live, 'disk', (body) => diskTargetOf(body) === 'vda');
    expect(vda).toMatch(/^<disk type='file' device='disk'>[\s\S]*<\/disk>$/);
    expect(diskSourceOf(vda!)).toBe('/top.qcow2');
    expect(deviceElement(live, 'disk', (body) => diskTargetOf(body) === 'hdc')).toBe("<disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><readonly/></disk>");
    expect(deviceElement(live, 'interface', (body) => macOf(body) === '52:54:00:aa:bb:cc')).toContain("<alias name='net0'/>");
    expect(deviceElement(live, 'disk', (body) => diskTargetOf(body) === 'vdq')).toBeUndefined();
  });
});

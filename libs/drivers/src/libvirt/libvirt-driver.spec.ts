import { describe, expect, it } from 'vitest';
import { DomainEventDetails, VirtError } from '@virtbus/api-contract';
import { Value } from 'typebox/value';
import { testDomainConfig } from '@virtbus/testing';
import { contractEventOf, LibvirtDriver, migrationStatusOf, renderDomainXml, statsFromParams, type LibvirtDomainEvent } from './libvirt-driver.js';

describe('renderDomainXml', () => {
  const config = testDomainConfig({
    name: "a&b",
    driver: 'libvirt',
    vcpus: 2,
    memory: 256,
    os: { kernel: '/k', initrd: '/i', cmdline: "console=ttyS0 x='1'" },
    disks: [{ source: { path: '/d.qcow2' } }, { source: { path: '/c.iso' }, device: 'cdrom', bus: 'sata', format: 'raw' }],
    nics: [{ type: 'user' }, { type: 'bridge', source: 'br0', model: 'e1000', mac: '52:54:00:00:00:01' }],
  });

  it('renders boot, disks from host files, user and bridge NICs and the serial console, escaped', () => {
    const xml = renderDomainXml(config, 'kvm');
    expect(xml).toContain("<domain type='kvm'><name>a&#38;b</name>");
    expect(xml).toContain('<os><type>hvm</type><kernel>/k</kernel><initrd>/i</initrd><cmdline>console=ttyS0 x=&#39;1&#39;</cmdline></os>');
    expect(xml).toContain("<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/d.qcow2'/><target dev='vda' bus='virtio'/></disk>");
    expect(xml).toContain("<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='/c.iso'/><target dev='sda' bus='sata'/><readonly/></disk>");
    expect(xml).toMatch(/<interface type='user'><mac address='52:54:00:[0-9a-f:]{8}'\/><model type='virtio'\/><\/interface>/);
    expect(xml).toContain("<interface type='bridge'><source bridge='br0'/><mac address='52:54:00:00:00:01'/><model type='e1000'/></interface>");
    expect(xml).toContain("<serial type='pty'/><console type='pty'/>");
  });

  it("renders qemu-ga's virtio-serial channel for QEMU domains only", () => {
    const channel = "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>";
    expect(renderDomainXml(config, 'qemu')).toContain(channel);
    expect(renderDomainXml(config, 'kvm')).toContain(channel);
    expect(renderDomainXml(config, 'xen')).not.toContain('<channel');
  });

  it('renders pool-volume disks, network NICs, the balloon and VNC on a unix socket with its video card', () => {
    const xml = renderDomainXml(
      { ...config, currentMemory: 128, disks: [{ source: { pool: 'images', volume: 'root.qcow2' } }], nics: [{ type: 'network', source: 'lan', mac: '52:54:00:00:00:02' }], graphics: { type: 'vnc', video: 'virtio', password: "p'w" } },
      'qemu',
    );
    expect(xml).toContain("<memory unit='MiB'>256</memory><currentMemory unit='MiB'>128</currentMemory>");
    expect(xml).toContain("<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/><source pool='images' volume='root.qcow2'/><target dev='vda' bus='virtio'/></disk>");
    expect(xml).toContain("<interface type='network'><source network='lan'/><mac address='52:54:00:00:00:02'/><model type='virtio'/></interface>");
    expect(xml).toContain("<graphics type='vnc' passwd='p&#39;w'><listen type='socket'/></graphics><video><model type='virtio'/></video>");
    expect(renderDomainXml({ ...config, graphics: { type: 'none' } }, 'qemu')).not.toContain('<graphics');
  });

  it('refuses what libvirt cannot be given from a virtbus config', () => {
    const driver = new LibvirtDriver({ uri: 'test:///default' });
    expect(() => driver.validate(config)).not.toThrow();
    expect(() => driver.validate({ ...config, disks: [{ source: { pool: 'p', volume: 'v' } }], nics: [{ type: 'network', source: 'net1' }], graphics: { type: 'vnc' }, currentMemory: 128 })).not.toThrow();
    const refused = (patch: object) => expect(() => driver.validate({ ...config, ...patch })).toThrow(VirtError);
    refused({ nics: [{ type: 'network', source: 'net1', filter: 'web' }] });
    refused({ currentMemory: 512 });
    refused({ disks: [{ source: { path: '/a' }, target: 'vda' }, { source: { path: '/b' }, target: 'vda' }] });
  });
});

describe('statsFromParams', () => {
  it('maps GetAllDomainStats typed parameters to the stats groups (KiB to bytes, vCPU states, block and net lists)', () => {
    const int = (value: number) => ({ type: 1 as const, value });
    const ull = (value: bigint) => ({ type: 4 as const, value });
    const str = (value: string) => ({ type: 7 as const, value });
    const base = { uuid: '00000000-0000-4000-8000-000000000001', name: 'x', state: 'running' as const, reason: 'booted' as const, collectedAt: '2026-01-01T00:00:00.000Z' };
    const params = [
      ['cpu.time', ull(5n)], ['cpu.user', ull(3n)], ['balloon.maximum', ull(1024n)], ['balloon.rss', ull(10n)],
      ['vcpu.current', int(1)], ['vcpu.maximum', int(2)], ['vcpu.0.state', int(1)], ['vcpu.0.time', ull(7n)],
      ['net.count', int(1)], ['net.0.name', str('vnet0')], ['net.0.rx.bytes', ull(9n)],
      ['block.count', int(1)], ['block.0.name', str('vda')], ['block.0.path', str('/d')], ['block.0.capacity', ull(100n)],
    ].map(([field, value]) => ({ field, value })) as Parameters<typeof statsFromParams>[0];
    expect(statsFromParams(params, base)).toEqual({
      ...base,
      cpu: { timeNs: 5, userNs: 3 },
      memory: { maximumBytes: 1024 * 1024, rssBytes: 10 * 1024 },
      vcpu: { current: 1, maximum: 2, list: [{ id: 0, state: 'running', timeNs: 7 }] },
      net: [{ name: 'vnet0', rxBytes: 9, rxPackets: 0, rxErrors: 0, rxDrops: 0, txBytes: 0, txPackets: 0, txErrors: 0, txDrops: 0 }],
      block: [{ name: 'vda', path: '/d', readRequests: 0, readBytes: 0, readTimeNs: 0, writeRequests: 0, writeBytes: 0, writeTimeNs: 0, capacityBytes: 100 }],
    });
  });
});

describe('contractEventOf', () => {
  const of = (type: LibvirtDomainEvent['type'], detail: LibvirtDomainEvent['detail']) => contractEventOf({ type, uuid: 'u', name: 'n', detail });

  it("names libvirt's event numbers as the contract's catalogue does, each valid against DomainEventDetails", () => {
    const cases = [
      [of('reboot', {}), { event: 'REBOOT', details: {} }],
      [of('rtcChange', { offset: '-3600' }), { event: 'RTC_CHANGE', details: { offset: -3600 } }],
      [of('watchdog', { action: 6 }), { event: 'WATCHDOG', details: { action: 'inject-nmi' } }],
      [of('ioError', { srcPath: '/d.qcow2', devAlias: 'virtio-disk0', action: 1 }), { event: 'IO_ERROR', details: { device: 'virtio-disk0', path: '/d.qcow2', action: 'pause' } }],
      [of('blockJob2', { dst: 'vda', type: 2, status: 3 }), { event: 'BLOCK_JOB', details: { device: 'vda', jobType: 'COPY', status: 'READY' } }],
      [of('diskChange', { oldSrcPath: '/a.iso', newSrcPath: null, devAlias: 'sata0-0-0', reason: 0 }), { event: 'DISK_CHANGE', details: { device: 'sata0-0-0', oldSource: '/a.iso', reason: 'MISSING_ON_START' } }],
      [of('trayChange', { devAlias: 'sata0-0-0', reason: 1 }), { event: 'TRAY_CHANGE', details: { device: 'sata0-0-0', reason: 'CLOSE' } }],
      [of('balloonChange', { actual: '65536' }), { event: 'BALLOON_CHANGE', details: { actualKiB: 65536 } }],
      [of('deviceAdded', { devAlias: 'virtio-disk1' }), { event: 'DEVICE_ADDED', details: { device: 'virtio-disk1' } }],
      [of('deviceRemoved', { devAlias: 'net1' }), { event: 'DEVICE_REMOVED', details: { device: 'net1' } }],
      [of('agentLifecycle', { state: 1, reason: 2 }), { event: 'AGENT_LIFECYCLE', details: { state: 'CONNECTED', reason: 'channel' } }],
      [of('metadataChange', { type: 1, nsuri: null }), { event: 'METADATA_CHANGE', details: { metadata: 'title' } }],
    ] as const;
    for (const [mapped, expected] of cases) {
      expect(mapped).toEqual(expected);
      expect(Value.Check(DomainEventDetails, mapped.details)).toBe(true);
    }
  });

  it('keeps a number libvirt added later as its number', () => {
    expect(of('watchdog', { action: 9 })).toEqual({ event: 'WATCHDOG', details: { action: '9' } });
  });
});

describe('migrationStatusOf', () => {
  it('reads virDomainGetJobStats figures (64-bit numbers included) into the migration status; absent ones are 0', () => {
    const status = migrationStatusOf([
      { field: 'memory_processed', value: { type: 4, value: 5_000_000n } },
      { field: 'memory_total', value: { type: 4, value: 268_435_456n } },
      { field: 'memory_remaining', value: { type: 4, value: 1_000n } },
      { field: 'memory_iteration', value: { type: 4, value: 3n } },
      { field: 'time_elapsed', value: { type: 4, value: 1_234n } },
      { field: 'downtime', value: { type: 4, value: 12n } },
    ]);
    expect(status).toEqual({
      phase: 'copying-ram',
      ramTransferredBytes: 5_000_000,
      ramTotalBytes: 268_435_456,
      ramRemainingBytes: 1_000,
      iteration: 3,
      dirtyPagesRate: 0,
      diskProcessedBytes: 0,
      diskTotalBytes: 0,
      downtimeMs: 12,
      totalTimeMs: 1_234,
    });
  });
});

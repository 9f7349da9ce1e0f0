import { describe, expect, it } from 'vitest';
import type { DomainConfig } from '@virtbus/api-contract';
import { diskBootIndexes } from './boot-order.js';
import { buildCommandLine, qemuPaths } from './command-line.js';

const config: DomainConfig = {
  name: 'inst',
  uuid: '0b6f5a36-9c38-4a57-9a4f-2a4d6f3d1e01',
  driver: 'qemu',
  vcpus: 1,
  memory: 256,
  os: { boot: ['cdrom', 'hd'] },
  disks: [
    { source: { path: '/p/root.qcow2' }, format: 'qcow2', bus: 'virtio' },
    { source: { path: '/p/installer.iso' }, device: 'cdrom', format: 'raw', bus: 'sata' },
    { source: { path: '/p/data.raw' }, format: 'raw', bus: 'virtio' },
  ],
  nics: [],
  console: { type: 'serial' },
  autostart: false,
};

describe('boot order for an ISO install', () => {
  it('gives cdroms then disks bootindex blocks in os.boot order', () => {
    expect(diskBootIndexes(config)).toEqual([100, 0, 101]);
    expect(diskBootIndexes({ ...config, os: { boot: ['hd'] } })).toEqual([0, undefined, 1]);
    expect(diskBootIndexes({ ...config, os: {} })).toEqual([undefined, undefined, undefined]);
  });

  it('puts bootindex on the ide-cd and virtio-blk devices', () => {
    const args = buildCommandLine(config, qemuPaths('/run/x'), { accel: 'tcg', cpuModel: 'max' }).join(' ');
    expect(args).toContain('-device ide-cd,drive=fmt-sda,id=sda,bus=sata0.0,bootindex=0');
    expect(args).toContain('-device virtio-blk-pci,drive=fmt-vda,id=vda,bootindex=100');
    expect(args).toContain('-device virtio-blk-pci,drive=fmt-vdb,id=vdb,bootindex=101');
  });
});

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type AgentProcess, ensureBusyboxRootfs, hasBinaryOrSkip, rejectsWith, spawnAgent, useAgentBus } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const NODE = 'prov';
const LXC = hasBinaryOrSkip('lxc-start');
const MKFS = hasBinaryOrSkip('mkfs.ext4');

const bus = useAgentBus('vb-prov-');
let agent: AgentProcess;

beforeAll(async () => {
  agent = await spawnAgent({ node: NODE, natsUrl: bus.server.url, stateDir: join(bus.dir, 'state'), drivers: LXC ? 'test,lxc' : 'test', env: { VIRTBUS_METRICS_ADDRESS: 'off' } });
}, 60_000);

afterAll(async () => {
  for (const domain of (await bus.client.call(NODE, 'domain.list', {}).catch(() => undefined))?.domains ?? []) {
    if (domain.state !== 'shutoff') await bus.client.call(NODE, 'domain.state', { id: domain.uuid, change: { action: 'destroy' } }, { timeoutMs: 30_000 }).catch(() => undefined);
  }
  await agent?.stop();
}, 60_000);

describe('domains on pool volumes (test driver)', () => {
  it('resolves a pool volume at start and reports missing volumes and inactive pools', async () => {
    await bus.client.call(NODE, 'volume.create', { pool: 'default', volume: { name: 'disk1', capacity: '8M' } });
    const defined = await bus.client.call(NODE, 'domain.define', { name: 't1', driver: 'test', disks: [{ source: { pool: 'default', volume: 'disk1' } }] });
    // The stored definition keeps the reference; the format comes from the volume at start.
    expect(defined.config.disks[0]).toMatchObject({ source: { pool: 'default', volume: 'disk1' }, device: 'disk', bus: 'virtio' });
    expect(defined.config.disks[0]!.format).toBeUndefined();
    const started = await bus.client.call(NODE, 'domain.state', { id: 't1', change: { action: 'start' } });
    expect(started.state).toBe('running');
    expect(started.config.disks[0]!.source).toEqual({ pool: 'default', volume: 'disk1' });
    await bus.client.call(NODE, 'domain.state', { id: 't1', change: { action: 'destroy' } });

    await bus.client.call(NODE, 'domain.define', { name: 't2', driver: 'test', disks: [{ source: { pool: 'default', volume: 'absent' } }] });
    await rejectsWith(bus.client.call(NODE, 'domain.state', { id: 't2', change: { action: 'start' } }), 'NO_STORAGE_VOL');
    await bus.client.call(NODE, 'domain.update', { id: 't2', config: { disks: [{ source: { pool: 'nopool', volume: 'disk1' } }] } });
    await rejectsWith(bus.client.call(NODE, 'domain.state', { id: 't2', change: { action: 'start' } }), 'NO_STORAGE_POOL');

    await bus.client.call(NODE, 'pool.define', { name: 'idle', type: 'dir', target: join(bus.dir, 'idle') });
    await bus.client.call(NODE, 'pool.state', { pool: 'idle', change: { action: 'build' } });
    await bus.client.call(NODE, 'domain.update', { id: 't2', config: { disks: [{ source: { pool: 'idle', volume: 'disk1' } }] } });
    const inactive = await rejectsWith(bus.client.call(NODE, 'domain.state', { id: 't2', change: { action: 'start' } }), 'OPERATION_INVALID');
    expect(inactive.message).toMatch(/not active/);
    await bus.client.call(NODE, 'domain.undefine', { id: 't2' });
  });

  it('refuses to delete a volume a defined domain uses, naming the domain', async () => {
    const error = await rejectsWith(bus.client.call(NODE, 'volume.delete', { pool: 'default', volume: 'disk1' }), 'OPERATION_INVALID');
    expect(error.message).toContain('t1');
    await bus.client.call(NODE, 'domain.undefine', { id: 't1' });
    await bus.client.call(NODE, 'volume.delete', { pool: 'default', volume: 'disk1' });
  });
});

describe('disk hotplug and media on the test driver (the reference implementation)', () => {
  it('attaches live and/or to the config, detaches, changes and ejects cdrom media', async () => {
    await bus.client.call(NODE, 'volume.create', { pool: 'default', volume: { name: 'hot1', capacity: '4M' } });
    await bus.client.call(NODE, 'volume.create', { pool: 'default', volume: { name: 'disc2.iso', format: 'raw', capacity: '1M' } });
    await bus.client.call(NODE, 'domain.define', {
      name: 'th',
      driver: 'test',
      disks: [{ source: { path: '/srv/a.qcow2' } }, { source: { path: '/srv/install.iso' }, device: 'cdrom' }],
    });
    // Shut off: the default scope is the definition, and live is refused.
    await rejectsWith(bus.client.call(NODE, 'domain.disk.attach', { id: 'th', attach: { disk: { source: { pool: 'default', volume: 'hot1' } }, live: true } }), 'OPERATION_INVALID');
    const persisted = await bus.client.call(NODE, 'domain.disk.attach', { id: 'th', attach: { disk: { source: { pool: 'default', volume: 'hot1' } } } });
    expect(persisted.config.disks.map((disk) => disk.target)).toEqual(['vda', 'sda', 'vdb']);
    const removed = await bus.client.call(NODE, 'domain.disk.detach', { id: 'th', target: 'vdb', detach: {} });
    expect(removed.config.disks.map((disk) => disk.target)).toEqual(['vda', 'sda']);

    const running = await bus.client.call(NODE, 'domain.state', { id: 'th', change: { action: 'start' } });
    expect(running.liveDisks?.map((disk) => disk.target)).toEqual(['vda', 'sda']);
    const plugged = await bus.client.call(NODE, 'domain.disk.attach', { id: 'th', attach: { disk: { source: { pool: 'default', volume: 'hot1' } } } });
    expect(plugged.liveDisks?.map((disk) => disk.target)).toEqual(['vda', 'sda', 'vdb']);
    expect(plugged.config.disks).toHaveLength(2);
    await rejectsWith(bus.client.call(NODE, 'domain.disk.attach', { id: 'th', attach: { disk: { source: { path: '/srv/b' }, target: 'vdb' } } }), 'OPERATION_INVALID');
    await rejectsWith(bus.client.call(NODE, 'domain.disk.attach', { id: 'th', attach: { disk: { source: { pool: 'default', volume: 'nothere' } } } }), 'NO_STORAGE_VOL');
    await rejectsWith(bus.client.call(NODE, 'volume.delete', { pool: 'default', volume: 'hot1' }), 'OPERATION_INVALID');
    const unplugged = await bus.client.call(NODE, 'domain.disk.detach', { id: 'th', target: 'vdb', detach: { live: true } });
    expect(unplugged.liveDisks?.map((disk) => disk.target)).toEqual(['vda', 'sda']);
    await rejectsWith(bus.client.call(NODE, 'domain.disk.detach', { id: 'th', target: 'vdq', detach: { live: true } }), 'INVALID_ARG');

    const changed = await bus.client.call(NODE, 'domain.media.change', { id: 'th', target: 'sda', change: { source: { pool: 'default', volume: 'disc2.iso' }, live: true, config: true } });
    expect(changed.liveDisks?.[1]?.source).toEqual({ pool: 'default', volume: 'disc2.iso' });
    expect(changed.config.disks[1]?.source).toEqual({ pool: 'default', volume: 'disc2.iso' });
    const ejected = await bus.client.call(NODE, 'domain.media.change', { id: 'th', target: 'sda', change: {} });
    expect(ejected.liveDisks?.[1]?.source).toBeUndefined();
    await rejectsWith(bus.client.call(NODE, 'domain.media.change', { id: 'th', target: 'sda', change: { config: true } }), 'OPERATION_UNSUPPORTED');
    await rejectsWith(bus.client.call(NODE, 'domain.media.change', { id: 'th', target: 'vda', change: { source: { path: '/srv/x.iso' } } }), 'INVALID_ARG');
    const qcow = await bus.client.call(NODE, 'volume.create', { pool: 'default', volume: { name: 'q.qcow2', capacity: '1M' } });
    expect(qcow.format).toBe('qcow2');
    await rejectsWith(bus.client.call(NODE, 'domain.media.change', { id: 'th', target: 'sda', change: { source: { pool: 'default', volume: 'q.qcow2' } } }), 'OPERATION_INVALID');

    await bus.client.call(NODE, 'domain.state', { id: 'th', change: { action: 'destroy' } });
    await bus.client.call(NODE, 'domain.undefine', { id: 'th' });
    for (const volume of ['hot1', 'disc2.iso', 'q.qcow2']) await bus.client.call(NODE, 'volume.delete', { pool: 'default', volume });
  });
});

describe.skipIf(!hasBinaryOrSkip('genisoimage') || !hasBinaryOrSkip('isoinfo'))('a domain from an image with a cloud-init seed', () => {
  const userData = '#cloud-config\nusers:\n  - name: ops\n    ssh_authorized_keys: ["ssh-ed25519 AAAA ops@example"]\nruncmd:\n  - [sh, -c, "echo ünïcode > /etc/motd"]\n';
  const networkConfig = 'version: 2\nethernets:\n  eth0:\n    dhcp4: true\n';

  it('creates an overlay on the image and a cidata ISO whose files read back exactly', async () => {
    await bus.client.call(NODE, 'volume.create', { pool: 'default', volume: { name: 'debian.qcow2', capacity: '64M' } });
    const domain = await bus.client.call(NODE, 'domain.define.image', {
      domain: { name: 'vm1', driver: 'test', memory: 256 },
      image: { pool: 'default', volume: 'debian.qcow2' },
      rootSize: '96M',
      cloudInit: { userData, networkConfig },
    });
    expect(domain.config.disks).toEqual([
      expect.objectContaining({ source: { pool: 'default', volume: 'vm1-root.qcow2' }, format: 'qcow2', bus: 'virtio' }),
      expect.objectContaining({ source: { pool: 'default', volume: 'vm1-cidata.iso' }, device: 'cdrom', bus: 'ide', readonly: true }),
    ]);
    const root = await bus.client.call(NODE, 'volume.get', { pool: 'default', volume: 'vm1-root.qcow2' });
    expect(root.format).toBe('qcow2');
    expect(root.capacityBytes).toBe(96 * 1024 * 1024);
    expect(root.backingChain[0]?.path).toMatch(/\/debian\.qcow2$/);
    const seed = await bus.client.call(NODE, 'volume.get', { pool: 'default', volume: 'vm1-cidata.iso' });
    expect(seed.format).toBe('raw');
    const { stdout: header } = await run('isoinfo', ['-d', '-i', seed.path]);
    expect(header).toMatch(/^Volume id: cidata$/m);
    const read = async (name: string) => (await run('isoinfo', ['-i', seed.path, '-R', '-x', `/${name}`], { encoding: 'buffer' })).stdout as unknown as Buffer;
    expect((await read('user-data')).equals(Buffer.from(userData))).toBe(true);
    expect((await read('network-config')).equals(Buffer.from(networkConfig))).toBe(true);
    expect((await read('meta-data')).toString()).toBe(`instance-id: ${domain.uuid}\nlocal-hostname: vm1\n`);
    const { stdout: listing } = await run('isoinfo', ['-i', seed.path, '-R', '-f']);
    expect(listing.split('\n').filter(Boolean).sort()).toEqual(['/meta-data', '/network-config', '/user-data']);

    const started = await bus.client.call(NODE, 'domain.state', { id: 'vm1', change: { action: 'start' } });
    expect(started.liveDisks?.map((disk) => disk.target)).toEqual(['vda', 'hda']);
    await rejectsWith(bus.client.call(NODE, 'volume.delete', { pool: 'default', volume: 'vm1-cidata.iso' }), 'OPERATION_INVALID');
    await bus.client.call(NODE, 'domain.state', { id: 'vm1', change: { action: 'destroy' } });
  });

  it('creates nothing when the call fails', async () => {
    const before = (await bus.client.call(NODE, 'volume.list', { pool: 'default' })).volumes.map((volume) => volume.name);
    await rejectsWith(bus.client.call(NODE, 'domain.define.image', { domain: { name: 'vm1', driver: 'test' }, image: { pool: 'default', volume: 'debian.qcow2' } }), 'DOMAIN_EXISTS');
    await rejectsWith(bus.client.call(NODE, 'domain.define.image', { domain: { name: 'vm2', driver: 'test' }, image: { pool: 'default', volume: 'nothere' } }), 'NO_STORAGE_VOL');
    await rejectsWith(bus.client.call(NODE, 'domain.define.image', { domain: { name: 'vm2', driver: 'test' }, image: { pool: 'default', volume: '../etc' } }), 'INVALID_ARG');
    await rejectsWith(bus.client.call(NODE, 'domain.define.image', { domain: { name: 'vm3', driver: 'test', disks: [{ source: { path: '/x' }, target: 'vdc' }, { source: { path: '/y' }, target: 'vdc' }] }, image: { pool: 'default', volume: 'debian.qcow2' } }), 'INVALID_ARG');
    // This agent has no qemu driver: define fails after the volumes were made, and they are removed again.
    await rejectsWith(bus.client.call(NODE, 'domain.define.image', { domain: { name: 'vm4', driver: 'qemu' }, image: { pool: 'default', volume: 'debian.qcow2' } }), 'OPERATION_UNSUPPORTED');
    expect((await bus.client.call(NODE, 'volume.list', { pool: 'default' })).volumes.map((volume) => volume.name)).toEqual(before);
    await bus.client.call(NODE, 'domain.undefine', { id: 'vm1' });
    for (const volume of ['vm1-root.qcow2', 'vm1-cidata.iso', 'debian.qcow2']) await bus.client.call(NODE, 'volume.delete', { pool: 'default', volume });
  });
});

describe.skipIf(!LXC || !MKFS)('an LXC container on an ext4 raw volume', () => {
  it('starts a busybox rootfs from a loop-mounted raw volume and runs exec', async () => {
    const rootfs = await ensureBusyboxRootfs();
    const volume = await bus.client.call(NODE, 'volume.create', { pool: 'default', volume: { name: 'ctroot', format: 'raw', capacity: '64M' } });
    await run('mkfs.ext4', ['-q', '-F', '-d', rootfs, volume.path]);
    await bus.client.call(NODE, 'domain.define', { name: 'ct', driver: 'lxc', memory: 64, container: { rootfs: { pool: 'default', volume: 'ctroot' }, hostname: 'vb-loop' } });
    const started = await bus.client.call(NODE, 'domain.state', { id: 'ct', change: { action: 'start' } }, { timeoutMs: 60_000 });
    expect(started.state).toBe('running');
    const hostname = await bus.client.call(NODE, 'domain.exec', { id: 'ct', exec: { command: ['hostname'] } });
    expect(hostname.stdout).toBe('vb-loop\n');
    const mounts = await bus.client.call(NODE, 'domain.exec', { id: 'ct', exec: { command: ['/bin/sh', '-c', 'grep " / " /proc/mounts'] } });
    expect(mounts.stdout).toMatch(/^\/dev\/loop\d+ \/ ext4 /m);
    const written = await bus.client.call(NODE, 'domain.exec', { id: 'ct', exec: { command: ['/bin/sh', '-c', 'echo persisted > /marker && sync'] } });
    expect(written.exitCode).toBe(0);
    await rejectsWith(bus.client.call(NODE, 'volume.delete', { pool: 'default', volume: 'ctroot' }), 'OPERATION_INVALID');
    await bus.client.call(NODE, 'domain.state', { id: 'ct', change: { action: 'destroy' } }, { timeoutMs: 30_000 });
    // LXC's loop device is released with the container, and the file written inside is in the image.
    const { stdout: loops } = await run('losetup', ['-j', volume.path]);
    expect(loops.trim()).toBe('');
    const { stdout: marker } = await run('debugfs', ['-R', 'cat /marker', volume.path]);
    expect(marker).toContain('persisted');
    await bus.client.call(NODE, 'domain.undefine', { id: 'ct' });
    await bus.client.call(NODE, 'volume.delete', { pool: 'default', volume: 'ctroot' });
  }, 120_000);

  it('has no disk hotplug: OPERATION_UNSUPPORTED', async () => {
    await bus.client.call(NODE, 'domain.define', { name: 'ct2', driver: 'lxc', container: { rootfs: { path: '/srv/none' } } });
    await rejectsWith(bus.client.call(NODE, 'domain.disk.attach', { id: 'ct2', attach: { disk: { source: { path: '/srv/d.img' } }, config: true } }), 'OPERATION_UNSUPPORTED');
    await bus.client.call(NODE, 'domain.undefine', { id: 'ct2' });
  });

  it('refuses a qcow2 volume as a container root filesystem', async () => {
    await bus.client.call(NODE, 'volume.create', { pool: 'default', volume: { name: 'ctq', format: 'qcow2', capacity: '16M' } });
    await bus.client.call(NODE, 'domain.define', { name: 'ctq', driver: 'lxc', container: { rootfs: { pool: 'default', volume: 'ctq' } } });
    const error = await rejectsWith(bus.client.call(NODE, 'domain.state', { id: 'ctq', change: { action: 'start' } }), 'OPERATION_UNSUPPORTED');
    expect(error.message).toMatch(/raw/);
    await bus.client.call(NODE, 'domain.undefine', { id: 'ctq' });
    await bus.client.call(NODE, 'volume.delete', { pool: 'default', volume: 'ctq' });
  });
});

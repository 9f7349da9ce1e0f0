import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type Domain } from '@virtbus/api-contract';
import { ensureTestGuest, GuestShell, nodeApi, GUEST_MARKERS, hasBinaryOrSkip, spawnAgent, type AgentProcess, type TestGuest, waitFor, tearDown, useAgentBus } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../src/index.js';

const QEMU = hasBinaryOrSkip('qemu-system-x86_64');
const GENISOIMAGE = hasBinaryOrSkip('genisoimage');
const NODE = 'hotplug';
const MiB = 1024 * 1024;

const bus = useAgentBus('vb-hotplug-');
let gateway: RunningGateway;
let agent: AgentProcess | undefined;
let guest: TestGuest;

const { api, ok, defineFromImage } = nodeApi(() => gateway.url, NODE);

describe.skipIf(!QEMU || !GENISOIMAGE)('pool volumes and disk hotplug on a running TCG guest', () => {
  let domain: Domain;
  let shell: GuestShell | undefined;
  const poolDir = () => join(bus.dir, 'state', 'pools', 'default');

  beforeAll(async () => {
    guest = await ensureTestGuest();
    agent = await spawnAgent({ node: NODE, natsUrl: bus.server.url, stateDir: join(bus.dir, 'state'), drivers: 'test,qemu' });
    gateway = await startGateway({ nc: bus.nc, host: '127.0.0.1', port: 0, heartbeatMs: 500, discoveryWaitMs: 500 });
  }, 300_000);

  afterAll(async () => {
    await shell?.close();
    if (domain) await bus.client.call(NODE, 'domain.state', { id: domain.uuid, change: { action: 'destroy' } }, { timeoutMs: 30_000 }).catch(() => undefined);
    await tearDown(gateway, agent);
  }, 120_000);

  it('boots from an image (qcow2 overlay + cidata cdrom) with the overlay as /dev/vda of the right size', async () => {
    domain = await defineFromImage('hp', guest, '48M');
    const started = await ok<Domain>('PUT', `/domains/hp/state`, { action: 'start' });
    expect(started.state).toBe('running');
    expect(started.liveDisks).toEqual([
      expect.objectContaining({ target: 'vda', source: { pool: 'default', volume: 'hp-root.qcow2' } }),
      expect.objectContaining({ target: 'hda', device: 'cdrom', source: { pool: 'default', volume: 'hp-cidata.iso' } }),
    ]);
    shell = await GuestShell.open(bus.client, bus.nc, NODE, 'hp');
    await waitFor('the guest shell', () => shell!.text().includes(GUEST_MARKERS.ready), 120_000);
    expect(Number(await shell.run('cat /sys/block/vda/size')) * 512).toBe(48 * MiB);
  }, 180_000);

  it('rejects path-traversal names with INVALID_ARG and creates nothing', async () => {
    const before = (await readdir(poolDir())).sort();
    for (const name of ['../evil', '..', 'a/b', '.hidden/../x']) {
      const created = await api('POST', '/storage-pools/default/volumes', { name, capacity: '1M' });
      expect(created.status, name).toBe(400);
      expect(created.body?.code).toBe('INVALID_ARG');
      const attached = await api('POST', '/domains/hp/disks', { disk: { source: { pool: 'default', volume: name } } });
      expect(attached.status, name).toBe(400);
      expect(attached.body?.code).toBe('INVALID_ARG');
    }
    const traversal = await api('POST', '/domains/hp/disks', { disk: { source: { path: '/tmp/../etc/passwd' } } });
    expect(traversal.body?.code).toBe('INVALID_ARG');
    expect((await readdir(poolDir())).sort()).toEqual(before);
    expect((await bus.client.call(NODE, 'domain.get', { id: 'hp' })).liveDisks).toHaveLength(2);
  });

  it('hotplugs a second disk: /dev/vdb appears with its size; the definition is unchanged', async () => {
    await ok('POST', '/storage-pools/default/volumes', { name: 'data.raw', format: 'raw', capacity: '32M' }, 201);
    const begin = Date.now();
    const attached = await ok<Domain>('POST', '/domains/hp/disks', { disk: { source: { pool: 'default', volume: 'data.raw' } }, live: true });
    console.info(`disk-hotplug: attach answered in ${Date.now() - begin} ms`);
    expect(attached.liveDisks?.map((disk) => disk.target)).toEqual(['vda', 'hda', 'vdb']);
    expect(attached.config.disks).toHaveLength(2);
    const size = await shell!.until('cat /sys/block/vdb/size 2>/dev/null || echo none', (output) => output !== 'none');
    console.info(`disk-hotplug: /dev/vdb seen ${Date.now() - begin} ms after the attach call`);
    expect(Number(size) * 512).toBe(32 * MiB);
    // The guest can use it.
    expect(await shell!.run('echo hotplugged > /dev/vdb && sync && head -c 10 /dev/vdb')).toBe('hotplugged');

    const inUse = await api('DELETE', '/storage-pools/default/volumes/data.raw');
    expect(inUse.status).toBe(409);
    expect(String(inUse.body?.message)).toContain('hp');
  }, 60_000);

  it('unplugs it (device_del, DEVICE_DELETED, blockdev-del): /dev/vdb goes away and the target is free again', async () => {
    const begin = Date.now();
    const detached = await ok<Domain>('DELETE', '/domains/hp/disks/vdb?live=true');
    console.info(`disk-hotplug: detach (DEVICE_DELETED) took ${Date.now() - begin} ms`);
    expect(detached.liveDisks?.map((disk) => disk.target)).toEqual(['vda', 'hda']);
    expect(await shell!.run('[ -e /sys/block/vdb ] && echo present || echo gone')).toBe('gone');
    const unknown = await api('DELETE', '/domains/hp/disks/vdz?live=true');
    expect(unknown.body?.code).toBe('INVALID_ARG');

    // The same target again, live and persisted: the old block nodes were deleted, so the names are free.
    const again = await ok<Domain>('POST', '/domains/hp/disks', { disk: { source: { pool: 'default', volume: 'data.raw' }, target: 'vdb' }, live: true, config: true });
    expect(again.config.disks.map((disk) => disk.target)).toEqual(['vda', 'hda', 'vdb']);
    expect(await shell!.until('head -c 10 /dev/vdb 2>/dev/null || echo none', (output) => output !== 'none')).toBe('hotplugged');
  }, 60_000);

  it('ejects and changes the cdrom media of the running domain (QMP eject / blockdev-change-medium)', async () => {
    const ejected = await ok<Domain>('PUT', '/domains/hp/disks/hda/media', { live: true });
    expect(ejected.liveDisks?.[1]).not.toHaveProperty('source');
    expect(ejected.config.disks[1]?.source).toEqual({ pool: 'default', volume: 'hp-cidata.iso' });
    const inserted = await ok<Domain>('PUT', '/domains/hp/disks/hda/media', { source: { pool: 'default', volume: 'hp-cidata.iso' } });
    expect(inserted.liveDisks?.[1]?.source).toEqual({ pool: 'default', volume: 'hp-cidata.iso' });
    const notCdrom = await api('PUT', '/domains/hp/disks/vda/media', {});
    expect(notCdrom.body?.code).toBe('INVALID_ARG');
    // The virtio disk cannot become a cdrom, and a sata disk cannot be hotplugged.
    const sata = await api('POST', '/domains/hp/disks', { disk: { source: { pool: 'default', volume: 'hp-cidata.iso' }, device: 'cdrom' }, live: true });
    expect(sata.body?.code).toBe('OPERATION_UNSUPPORTED');
  });

  it('keeps config-only changes for the next start and refuses live changes on a shut-off domain', async () => {
    await shell!.close();
    shell = undefined;
    const stopped = await ok<Domain>('PUT', '/domains/hp/state', { action: 'destroy' });
    expect(stopped.liveDisks).toBeUndefined();
    expect(stopped.config.disks.map((disk) => disk.target)).toEqual(['vda', 'hda', 'vdb']);
    const live = await api('POST', '/domains/hp/disks', { disk: { source: { pool: 'default', volume: 'data.raw' } }, live: true });
    expect(live.body?.code).toBe('OPERATION_INVALID');
    const removed = await ok<Domain>('DELETE', '/domains/hp/disks/vdb');
    expect(removed.config.disks.map((disk) => disk.target)).toEqual(['vda', 'hda']);
    await ok('DELETE', '/storage-pools/default/volumes/data.raw');
  });
});

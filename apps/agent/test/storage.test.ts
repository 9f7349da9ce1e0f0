import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readdir, readFile, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { connect, headers as natsHeaders, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { StreamHeaders, type AsyncOperation, type OperationEvent, type StoragePoolEvent } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { type AgentProcess, deviceMapperMissingReason, hasBinaryOrSkip, type NatsServerHandle, rejectsWith, spawnAgent, startNatsServer, titleWithSkipReason } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const NODE = 'stor';
const MiB = 1024 * 1024;
const NO_UDEV = 'activation { udev_sync = 0 udev_rules = 0 } devices { obtain_device_list_from_udev = 0 }';
const lvmEnv = { ...process.env, LVM_SUPPRESS_FD_WARNINGS: '1' };
const lvm = (command: string, ...args: string[]) => run('lvm', [command, '--config', NO_UDEV, ...args], { env: lvmEnv });

let nats: NatsServerHandle;
let nc: NatsConnection;
let client: VirtClient;
let agent: AgentProcess;
let workDir: string;
let poolEventsSub: Subscription;
const poolEvents: StoragePoolEvent[] = [];
let loopDevice: string | undefined;
const vgName = `vbtest${process.pid}`;

async function qemuImgInfo(path: string): Promise<Record<string, unknown>[]> {
  const { stdout } = await run('qemu-img', ['info', '--output=json', '--backing-chain', '-U', path]);
  return JSON.parse(stdout) as Record<string, unknown>[];
}

async function finished(operation: AsyncOperation): Promise<AsyncOperation> {
  const deadline = Date.now() + 30_000;
  let current = operation;
  while (current.status === 'running' && Date.now() < deadline) {
    await sleep(50);
    current = await client.call(NODE, 'operation.get', { id: operation.id });
  }
  return current;
}

async function eventsOf(pool: string, count: number): Promise<string[]> {
  // events go out through two fsyncs (the agent's log, JetStream) on a disk shared with other work: seconds when it is busy
  const deadline = Date.now() + 30_000;
  const types = () => poolEvents.filter((event) => event.name === pool).map((event) => event.type);
  while (types().length < count && Date.now() < deadline) await sleep(20);
  return types();
}

const startStorageAgent = () => spawnAgent({ node: NODE, natsUrl: nats.url, stateDir: join(workDir, 'state'), env: { VIRTBUS_METRICS_ADDRESS: 'off' } });

beforeAll(async () => {
  nats = await startNatsServer();
  workDir = await mkdtemp(join(tmpdir(), 'virtbus-storage-test-'));
  nc = await connect({ servers: nats.url });
  client = new VirtClient(nc);
  poolEventsSub = nc.subscribe(`virt.v1.${NODE}.events.pool.>`, {
    callback: (_error, msg) => {
      const event = msg.json<StoragePoolEvent>();
      if (!poolEvents.some((other) => other.seq === event.seq)) poolEvents.push(event);
    },
  });
  agent = await startStorageAgent();
});

afterAll(async () => {
  poolEventsSub?.unsubscribe();
  await agent?.stop();
  // The volume group and loop device go even when a test failed half way.
  if (loopDevice) {
    await lvm('vgremove', '-f', vgName).catch(() => undefined);
    await lvm('pvremove', '-ff', '-y', loopDevice).catch(() => undefined);
    await run('losetup', ['-d', loopDevice]).catch(() => undefined);
  }
  await nc?.close();
  await nats?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe('storage pools and volumes on a real agent', () => {
  it('has a running default dir pool on a new node, with the filesystem figures', async () => {
    const pools = await client.call(NODE, 'pool.list', {});
    const pool = pools.pools.find((candidate) => candidate.name === 'default');
    expect(pool).toMatchObject({ type: 'dir', state: 'running', autostart: true, target: join(workDir, 'state', 'pools', 'default') });
    const { stdout } = await run('df', ['-B1', '--output=size', pool!.target]);
    expect(pool!.capacityBytes).toBe(Number(stdout.split('\n')[1]!.trim()));
    expect(pool!.availableBytes).toBeGreaterThan(0);
    expect(pool!.allocationBytes).toBeGreaterThan(0);
  });

  it('runs a dir pool through define, build, start, stop, delete and undefine with libvirt events', async () => {
    const target = join(workDir, 'p1');
    const defined = await client.call(NODE, 'pool.define', { name: 'p1', type: 'dir', target });
    expect(defined).toMatchObject({ state: 'inactive', capacityBytes: 0 });
    await rejectsWith(client.call(NODE, 'pool.define', { name: 'p1', type: 'dir', target: join(workDir, 'other') }), 'STORAGE_POOL_EXISTS');
    await rejectsWith(client.call(NODE, 'volume.list', { pool: 'p1' }), 'OPERATION_INVALID');
    await rejectsWith(client.call(NODE, 'pool.state', { pool: 'p1', change: { action: 'start' } }), 'OPERATION_INVALID');
    await client.call(NODE, 'pool.state', { pool: 'p1', change: { action: 'build' } });
    expect((await stat(target)).isDirectory()).toBe(true);
    const running = await client.call(NODE, 'pool.state', { pool: 'p1', change: { action: 'start' } });
    expect(running.state).toBe('running');
    expect(running.capacityBytes).toBeGreaterThan(0);
    await client.call(NODE, 'pool.state', { pool: 'p1', change: { action: 'refresh' } });
    await rejectsWith(client.call(NODE, 'pool.undefine', { pool: 'p1' }), 'OPERATION_INVALID');
    expect((await client.call(NODE, 'pool.update', { pool: 'p1', config: { autostart: true } })).autostart).toBe(true);
    expect((await client.call(NODE, 'pool.state', { pool: 'p1', change: { action: 'stop' } })).state).toBe('inactive');
    await client.call(NODE, 'pool.state', { pool: 'p1', change: { action: 'delete' } });
    expect(existsSync(target)).toBe(false);
    await client.call(NODE, 'pool.undefine', { pool: 'p1' });
    await rejectsWith(client.call(NODE, 'pool.get', { pool: 'p1' }), 'NO_STORAGE_POOL');
    expect(await eventsOf('p1', 6)).toEqual(['DEFINED', 'CREATED', 'STARTED', 'STOPPED', 'DELETED', 'UNDEFINED']);
  });

  it('creates, overlays, resizes, clones, wipes and deletes dir volumes as qemu-img sees them', async () => {
    const target = join(workDir, 'p2');
    await client.call(NODE, 'pool.define', { name: 'p2', type: 'dir', target });
    await client.call(NODE, 'pool.state', { pool: 'p2', change: { action: 'build' } });
    await client.call(NODE, 'pool.state', { pool: 'p2', change: { action: 'start' } });

    const base = await client.call(NODE, 'volume.create', { pool: 'p2', volume: { name: 'base.qcow2', capacity: '64M' } });
    expect(base).toMatchObject({ format: 'qcow2', capacityBytes: 64 * MiB, path: join(target, 'base.qcow2'), backingChain: [] });
    const [baseInfo] = await qemuImgInfo(base.path);
    expect(baseInfo).toMatchObject({ format: 'qcow2', 'virtual-size': 64 * MiB });
    await rejectsWith(client.call(NODE, 'volume.create', { pool: 'p2', volume: { name: 'base.qcow2', capacity: '1M' } }), 'STORAGE_VOL_EXISTS');

    const raw = await client.call(NODE, 'volume.create', { pool: 'p2', volume: { name: 'data.raw', format: 'raw', capacity: 8 * MiB } });
    expect((await qemuImgInfo(raw.path))[0]).toMatchObject({ format: 'raw', 'virtual-size': 8 * MiB });
    expect(raw.capacityBytes).toBe(8 * MiB);

    const overlay = await client.call(NODE, 'volume.create', { pool: 'p2', volume: { name: 'vm1.qcow2', capacity: '128M', backing: { volume: 'base.qcow2' } } });
    const chain = await qemuImgInfo(overlay.path);
    expect(chain.map((entry) => [entry['filename'], entry['format']])).toEqual([
      [overlay.path, 'qcow2'],
      [base.path, 'qcow2'],
    ]);
    expect(overlay.backingChain).toEqual([{ path: base.path, format: 'qcow2' }]);
    expect(overlay.capacityBytes).toBe(128 * MiB);

    const grown = await client.call(NODE, 'volume.resize', { pool: 'p2', volume: 'base.qcow2', resize: { capacity: '96M' } });
    expect(grown.capacityBytes).toBe(96 * MiB);
    expect((await qemuImgInfo(base.path))[0]!['virtual-size']).toBe(96 * MiB);
    await rejectsWith(client.call(NODE, 'volume.resize', { pool: 'p2', volume: 'data.raw', resize: { capacity: '4M' } }), 'OPERATION_INVALID');
    expect((await qemuImgInfo(raw.path))[0]!['virtual-size']).toBe(8 * MiB);
    const shrunk = await client.call(NODE, 'volume.resize', { pool: 'p2', volume: 'data.raw', resize: { capacity: '4M', allowShrink: true } });
    expect(shrunk.capacityBytes).toBe(4 * MiB);

    // Known bytes in the raw volume: the clone must carry them, the wipe must zero them.
    const pattern = Buffer.alloc(MiB, 0xa5);
    const handle = await open(raw.path, 'r+');
    await handle.write(pattern, 0, pattern.length, MiB);
    await handle.close();
    const clone = await finished(await client.call(NODE, 'volume.clone', { pool: 'p2', volume: 'data.raw', clone: { name: 'copy.raw' } }));
    expect(clone).toMatchObject({ status: 'success', progress: { percent: 100, bytesTotal: 4 * MiB } });
    const copyPath = join(target, 'copy.raw');
    expect((await qemuImgInfo(copyPath))[0]).toMatchObject({ format: 'raw', 'virtual-size': 4 * MiB });
    expect((await readFile(copyPath)).equals(await readFile(raw.path))).toBe(true);
    await rejectsWith(client.call(NODE, 'volume.clone', { pool: 'p2', volume: 'data.raw', clone: { name: 'copy.raw' } }), 'STORAGE_VOL_EXISTS');

    const wipe = await finished(await client.call(NODE, 'volume.wipe', { pool: 'p2', volume: 'data.raw' }));
    expect(wipe.status).toBe('success');
    const wiped = await readFile(raw.path);
    expect(wiped.length).toBe(4 * MiB);
    expect(wiped.every((byte) => byte === 0)).toBe(true);
    const ops = await client.call(NODE, 'operation.list', {});
    expect(ops.operations.map((op) => op.id)).toEqual(expect.arrayContaining([clone.id, wipe.id]));
    await rejectsWith(client.call(NODE, 'operation.cancel', { id: wipe.id }), 'OPERATION_INVALID');

    const listed = await client.call(NODE, 'volume.list', { pool: 'p2' });
    expect(listed.volumes.map((volume) => volume.name)).toEqual(['base.qcow2', 'copy.raw', 'data.raw', 'vm1.qcow2']);

    for (const name of ['vm1.qcow2', 'base.qcow2', 'copy.raw', 'data.raw']) await client.call(NODE, 'volume.delete', { pool: 'p2', volume: name });
    await rejectsWith(client.call(NODE, 'volume.get', { pool: 'p2', volume: 'base.qcow2' }), 'NO_STORAGE_VOL');
    expect(await readdir(target)).toEqual([]);
  });

  it('rejects path-traversal names with INVALID_ARG and creates nothing', async () => {
    const before = await readdir(workDir, { recursive: true });
    const evil = ['../escape', '..', 'a/b', '/etc/passwd', 'x\u0001y', '.hidden', 'a..b'];
    for (const name of evil) {
      await rejectsWith(client.call(NODE, 'volume.create', { pool: 'p2', volume: { name, capacity: '1M' } }), 'INVALID_ARG');
      await rejectsWith(client.call(NODE, 'volume.get', { pool: 'p2', volume: name }), 'INVALID_ARG');
      await rejectsWith(client.call(NODE, 'volume.clone', { pool: 'p2', volume: 'x', clone: { name } }), 'INVALID_ARG');
      await rejectsWith(client.call(NODE, 'volume.upload', { pool: 'p2', volume: name }), 'INVALID_ARG');
      await rejectsWith(client.call(NODE, 'pool.define', { name, type: 'dir' }), 'INVALID_ARG');
    }
    await rejectsWith(client.call(NODE, 'pool.define', { name: 'p3', type: 'dir', target: `${workDir}/../x` }), 'INVALID_ARG');
    await rejectsWith(client.call(NODE, 'volume.create', { pool: 'p2', volume: { name: 'ok', capacity: '1Q' } }), 'INVALID_ARG');
    expect(await readdir(workDir, { recursive: true })).toEqual(before);
  });

  const noLvmTools = hasBinaryOrSkip('lvm') && hasBinaryOrSkip('losetup') ? undefined : 'lvm or losetup is not installed (CI installs them)';
  const noDeviceMapper = noLvmTools ?? deviceMapperMissingReason();

  it.skipIf(noLvmTools !== undefined)(titleWithSkipReason('builds and starts a logical pool on a loop device: VG built, figures from vgs, bad volumes refused', noLvmTools), async () => {
    const backing = join(workDir, 'pv.img');
    await run('truncate', ['-s', '128M', backing]);
    loopDevice = (await run('losetup', ['-f', '--show', backing])).stdout.trim();

    await client.call(NODE, 'pool.define', { name: 'vg1', type: 'logical', vgName, sourceDevices: [loopDevice] });
    await client.call(NODE, 'pool.state', { pool: 'vg1', change: { action: 'build' } });
    const { stdout } = await lvm('vgs', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', 'vg_size,vg_free', vgName);
    const vg = (JSON.parse(stdout) as { report: { vg: { vg_size: string; vg_free: string }[] }[] }).report[0]!.vg[0]!;
    const pool = await client.call(NODE, 'pool.state', { pool: 'vg1', change: { action: 'start' } });
    expect(pool).toMatchObject({ state: 'running', target: `/dev/${vgName}`, vgName, capacityBytes: Number(vg.vg_size), availableBytes: Number(vg.vg_free) });
    await rejectsWith(client.call(NODE, 'volume.create', { pool: 'vg1', volume: { name: 'lv1', format: 'qcow2', capacity: '8M' } }), 'INVALID_ARG');
    await rejectsWith(client.call(NODE, 'volume.create', { pool: 'vg1', volume: { name: '../lv', capacity: '8M' } }), 'INVALID_ARG');
  });

  it.skipIf(noLvmTools !== undefined || noDeviceMapper === undefined)(
    titleWithSkipReason('refuses logical volumes with a clear error where the kernel has no device-mapper', noLvmTools ?? (noDeviceMapper === undefined ? 'this kernel has device-mapper' : undefined)),
    async () => {
      const error = await rejectsWith(client.call(NODE, 'volume.create', { pool: 'vg1', volume: { name: 'lv1', capacity: '8M' } }), 'OPERATION_FAILED');
      expect(error.message).toMatch(/device-mapper/);
    },
  );

  it.skipIf(noDeviceMapper !== undefined)(titleWithSkipReason('creates, resizes, clones, wipes and deletes logical volumes (lvcreate)', noDeviceMapper), async () => {
    const lv = await client.call(NODE, 'volume.create', { pool: 'vg1', volume: { name: 'lv1', capacity: '8M' } });
    expect(lv).toMatchObject({ format: 'raw', capacityBytes: 8 * MiB, path: `/dev/${vgName}/lv1` });
    expect((await qemuImgInfo(lv.path))[0]).toMatchObject({ format: 'raw', 'virtual-size': 8 * MiB });
    expect((await client.call(NODE, 'volume.resize', { pool: 'vg1', volume: 'lv1', resize: { capacity: '16M' } })).capacityBytes).toBe(16 * MiB);
    await rejectsWith(client.call(NODE, 'volume.resize', { pool: 'vg1', volume: 'lv1', resize: { capacity: '4M' } }), 'OPERATION_INVALID');
    expect((await finished(await client.call(NODE, 'volume.clone', { pool: 'vg1', volume: 'lv1', clone: { name: 'lv2' } }))).status).toBe('success');
    expect((await finished(await client.call(NODE, 'volume.wipe', { pool: 'vg1', volume: 'lv2' }))).status).toBe('success');
    const lvs = await lvm('lvs', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', 'lv_name,lv_size', vgName);
    expect(lvs.stdout).toContain('"lv2"');
    for (const name of ['lv1', 'lv2']) await client.call(NODE, 'volume.delete', { pool: 'vg1', volume: name });
  });

  it.skipIf(noLvmTools !== undefined)(titleWithSkipReason('stops, deletes and undefines the logical pool with its lifecycle events', noLvmTools), async () => {
    expect((await client.call(NODE, 'volume.list', { pool: 'vg1' })).volumes).toEqual([]);
    await client.call(NODE, 'pool.state', { pool: 'vg1', change: { action: 'stop' } });
    await client.call(NODE, 'pool.state', { pool: 'vg1', change: { action: 'delete' } });
    expect(await lvm('vgs', vgName).then(() => 'exists', () => 'gone')).toBe('gone');
    await client.call(NODE, 'pool.undefine', { pool: 'vg1' });
    expect(await eventsOf('vg1', 6)).toEqual(['DEFINED', 'CREATED', 'STARTED', 'STOPPED', 'DELETED', 'UNDEFINED']);
    await truncate(join(workDir, 'pv.img'), 0);
  });

  it('announces operations on the bus and cancels an upload, leaving nothing behind', async () => {
    const seen: OperationEvent[] = [];
    const sub = nc.subscribe(`virt.v1.${NODE}.events.operation.>`, {
      callback: (_error, msg) => {
        seen.push(msg.json<OperationEvent>());
      },
    });
    const session = await client.call(NODE, 'volume.upload', { pool: 'default', volume: 'cancelled.raw', create: true });
    expect(session.subject).toMatch(new RegExp(`^virt\\.v1\\.${NODE}\\.rw\\.stream\\.upload\\.`));
    const headers = natsHeaders();
    headers.set(StreamHeaders.Offset, '0');
    const ack = await nc.request(session.subject, new Uint8Array(1000), { headers, timeout: 5000 });
    expect(JSON.parse(ack.string())).toEqual({ result: { received: 1000 } });
    await client.call(NODE, 'operation.cancel', { id: session.operation.id });
    expect((await finished(session.operation)).status).toBe('cancelled');
    headers.set(StreamHeaders.Offset, '1000');
    await expect(nc.request(session.subject, new Uint8Array(10), { headers, timeout: 2000 })).rejects.toThrow();
    expect(await readdir(join(workDir, 'state', 'pools', 'default'))).toEqual([]);
    const deadline = Date.now() + 30_000;
    while (!seen.some((event) => event.operation.status === 'cancelled') && Date.now() < deadline) await sleep(20);
    sub.unsubscribe();
    // A declared size that the upload does not reach fails at commit and keeps nothing.
    const short = await client.call(NODE, 'volume.upload', { pool: 'default', volume: 'short.raw', sizeBytes: 2000, create: true });
    headers.set(StreamHeaders.Offset, '0');
    await nc.request(short.subject, new Uint8Array(1000), { headers, timeout: 5000 });
    const commit = natsHeaders();
    commit.set(StreamHeaders.Action, 'commit');
    const refused = await nc.request(short.subject, new Uint8Array(0), { headers: commit, timeout: 5000 });
    expect(refused.headers?.get(StreamHeaders.Action)).toBe('error');
    expect(JSON.parse(refused.string())).toMatchObject({ error: { code: 'INVALID_ARG' } });
    expect((await client.call(NODE, 'operation.get', { id: short.operation.id })).status).toBe('failure');
    expect(await readdir(join(workDir, 'state', 'pools', 'default'))).toEqual([]);
    const mine = seen.filter((event) => event.operation.id === session.operation.id).map((event) => event.operation.status);
    expect(mine[0]).toBe('running');
    expect(mine.at(-1)).toBe('cancelled');
  });

  /** A whole upload over the bus: one chunk, then the commit; returns the commit's reply (result or error). */
  async function uploadAll(volume: string, data: Uint8Array, create?: boolean): Promise<{ result?: AsyncOperation; error?: { code: string; message: string } }> {
    const session = await client.call(NODE, 'volume.upload', { pool: 'default', volume, sizeBytes: data.length, ...(create !== undefined ? { create } : {}) });
    const chunk = natsHeaders();
    chunk.set(StreamHeaders.Offset, '0');
    await nc.request(session.subject, data, { headers: chunk, timeout: 5000 });
    const commit = natsHeaders();
    commit.set(StreamHeaders.Action, 'commit');
    return JSON.parse((await nc.request(session.subject, new Uint8Array(0), { headers: commit, timeout: 10_000 })).string()) as { result?: AsyncOperation };
  }

  it('uploads only into an existing volume unless asked to create it, and never changes its capacity', async () => {
    const data = new Uint8Array(300 * 1024).fill(7);
    // a missing volume is an error, and nothing is created
    await rejectsWith(client.call(NODE, 'volume.upload', { pool: 'default', volume: 'missing.raw' }), 'NO_STORAGE_VOL');
    expect(existsSync(join(workDir, 'state', 'pools', 'default', 'missing.raw'))).toBe(false);
    // with create it is made from the upload
    expect((await uploadAll('made.raw', data, true)).result?.status).toBe('success');
    expect((await client.call(NODE, 'volume.get', { pool: 'default', volume: 'made.raw' })).capacityBytes).toBe(data.length);
    // a 4 MiB raw volume keeps its 4 MiB: the upload is its first bytes, the rest reads as zeros
    await client.call(NODE, 'volume.create', { pool: 'default', volume: { name: 'big.raw', format: 'raw', capacity: 4 * MiB } });
    expect((await uploadAll('big.raw', data)).result?.status).toBe('success');
    expect((await client.call(NODE, 'volume.get', { pool: 'default', volume: 'big.raw' })).capacityBytes).toBe(4 * MiB);
    const content = await readFile(join(workDir, 'state', 'pools', 'default', 'big.raw'));
    expect(content.length).toBe(4 * MiB);
    expect(content.subarray(0, data.length).equals(Buffer.from(data))).toBe(true);
    expect(content.subarray(data.length).every((byte) => byte === 0)).toBe(true);
    // more bytes than the volume holds are refused up front
    await rejectsWith(client.call(NODE, 'volume.upload', { pool: 'default', volume: 'made.raw', sizeBytes: data.length + 1 }), 'INVALID_ARG');
    // raw bytes into a qcow2 volume would change its format and size: refused, the volume unchanged
    await client.call(NODE, 'volume.create', { pool: 'default', volume: { name: 'disk.qcow2', format: 'qcow2', capacity: 8 * MiB } });
    expect((await uploadAll('disk.qcow2', data)).error?.code).toBe('INVALID_ARG');
    expect(await client.call(NODE, 'volume.get', { pool: 'default', volume: 'disk.qcow2' })).toMatchObject({ format: 'qcow2', capacityBytes: 8 * MiB });
    for (const volume of ['made.raw', 'big.raw', 'disk.qcow2']) await client.call(NODE, 'volume.delete', { pool: 'default', volume });
  });

  it('keeps pool definitions across an agent restart and starts the pools that were running', async () => {
    await agent.stop();
    agent = await startStorageAgent();
    const pools = (await client.call(NODE, 'pool.list', {})).pools.map((pool) => [pool.name, pool.state]);
    expect(pools).toEqual([
      ['default', 'running'],
      ['p2', 'running'],
    ]);
  });
});

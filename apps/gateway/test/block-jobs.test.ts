import { execFileSync } from 'node:child_process';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Subjects, type AsyncOperation, type Domain, type DomainEvent } from '@virtbus/api-contract';
import { ensureTestGuest, freePort, GuestShell, nodeApi, GUEST_MARKERS, hasBinaryOrSkip, spawnAgent, type AgentProcess, waitFor, tearDown, useAgentBus } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../src/index.js';

const QEMU = hasBinaryOrSkip('qemu-system-x86_64');
const GENISOIMAGE = hasBinaryOrSkip('genisoimage');
const QEMU_IO = hasBinaryOrSkip('qemu-io');
const NODE = 'blockjobs';
const MiB = 1024 * 1024;
const events: DomainEvent[] = [];

const bus = useAgentBus('vb-blockjobs-');
let gateway: RunningGateway;
let agent: AgentProcess | undefined;
let metricsPort = 0;
/** The agent of the node on its state dir: started again after a SIGKILL, it finds the domain and its block jobs. */
const startAgent = () =>
  spawnAgent({ node: NODE, natsUrl: bus.server.url, stateDir: join(bus.dir, 'state'), drivers: 'test,qemu', extraArgs: ['--metrics-address', `127.0.0.1:${metricsPort}`, '--metrics-cache-ms', '0'] });

const { api, ok, defineFromImage } = nodeApi(() => gateway.url, NODE);
const images = () => join(bus.dir, 'images');
const image = (name: string) => join(images(), name);

function qemuImg(...args: string[]): string {
  return execFileSync('qemu-img', args, { encoding: 'utf8' });
}

/** The first bytes of a qcow2 image's guest view, read on the host while QEMU holds it (-U). */
async function headOf(path: string, bytes: number): Promise<string> {
  const raw = `${path}.raw`;
  qemuImg('convert', '-U', '-f', 'qcow2', '-O', 'raw', path, raw);
  const text = (await readFile(raw)).subarray(0, bytes).toString('latin1');
  await rm(raw);
  return text;
}

async function finished(operation: AsyncOperation): Promise<AsyncOperation> {
  let now = operation;
  await waitFor(`operation ${operation.description}`, async () => (now = await ok<AsyncOperation>('GET', `/operations/${operation.id}`)).status !== 'running', 120_000);
  return now;
}

const blockJobEvents = (device: string) => events.filter((event) => event.event === 'BLOCK_JOB' && event.details.device === device).map((event) => `${event.details.jobType}:${event.details.status}`);

async function plug(target: string, path: string): Promise<Domain> {
  return ok<Domain>('POST', '/domains/bj/disks', { disk: { source: { path }, format: 'qcow2', target }, live: true });
}

describe.skipIf(!QEMU || !GENISOIMAGE || !QEMU_IO)('block jobs on a running TCG guest (blockresize, blockpull, blockcommit, blockcopy, cancel)', () => {
  let domain: Domain;
  let shell: GuestShell | undefined;

  beforeAll(async () => {
    const guest = await ensureTestGuest();
    await mkdir(images(), { recursive: true });
    metricsPort = await freePort();
    agent = await startAgent();
    gateway = await startGateway({ nc: bus.nc, host: '127.0.0.1', port: 0, heartbeatMs: 500, discoveryWaitMs: 500 });
    bus.nc.subscribe(Subjects.eventKindFilter({ node: NODE, kind: 'domainevent' }), { callback: (_error, message) => void events.push(message.json<DomainEvent>()) });
    domain = await defineFromImage('bj', guest, '48M');
    await ok<Domain>('PUT', '/domains/bj/state', { action: 'start' });
    shell = await GuestShell.open(bus.client, bus.nc, NODE, 'bj');
    await waitFor('the guest shell', () => shell!.text().includes(GUEST_MARKERS.ready), 120_000);
  }, 300_000);

  afterAll(async () => {
    await shell?.close();
    // a no-op (409) when the last test stopped it already
    if (gateway) await api('PUT', '/domains/bj/state', { action: 'destroy' });
    await tearDown(gateway, agent);
  }, 120_000);

  it('blockresize grows a running disk and the guest sees the new size; blkdeviotune sets its limits', async () => {
    qemuImg('create', '-q', '-f', 'qcow2', image('data.qcow2'), '16M');
    await plug('vdb', image('data.qcow2'));
    expect(await shell!.until('cat /sys/block/vdb/size 2>/dev/null || echo none', (output) => output !== 'none')).toBe(String((16 * MiB) / 512));
    await ok('PUT', '/domains/bj/disks/vdb/size', { sizeBytes: 32 * MiB });
    expect(await shell!.until('cat /sys/block/vdb/size', (output) => output !== String((16 * MiB) / 512))).toBe(String((32 * MiB) / 512));
    const odd = await api('PUT', '/domains/bj/disks/vdb/size', { sizeBytes: 32 * MiB + 1 });
    expect(odd.body?.code).toBe('INVALID_ARG');
    const unknown = await api('PUT', '/domains/bj/disks/vdz/size', { sizeBytes: 32 * MiB });
    expect(unknown.body?.code).toBe('INVALID_ARG');

    const tune = await ok('PUT', '/domains/bj/disks/vdb/iotune', { totalBytesSec: 4 * MiB, writeIopsSec: 100 });
    expect(tune).toEqual({ totalBytesSec: 4 * MiB, readBytesSec: 0, writeBytesSec: 0, totalIopsSec: 0, readIopsSec: 0, writeIopsSec: 100 });
    expect(await ok('PUT', '/domains/bj/disks/vdb/iotune', {})).toMatchObject({ totalBytesSec: 0, writeIopsSec: 0 });
  }, 120_000);

  it('blockpull copies the backing file into the overlay, which then has no backing file', async () => {
    qemuImg('create', '-q', '-f', 'qcow2', image('pull-base.qcow2'), '16M');
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x41 0 1M', image('pull-base.qcow2')]);
    qemuImg('create', '-q', '-f', 'qcow2', '-b', image('pull-base.qcow2'), '-F', 'qcow2', image('pull-top.qcow2'));
    await plug('vdc', image('pull-top.qcow2'));
    expect(await shell!.until('head -c 4 /dev/vdc 2>/dev/null || echo none', (output) => output !== 'none')).toBe('AAAA');

    const started = await ok<AsyncOperation>('POST', '/domains/bj/disks/vdc/pull', {}, 202);
    expect(started).toMatchObject({ status: 'running', resources: { domain: domain.uuid } });
    expect(await finished(started)).toMatchObject({ status: 'success', progress: { percent: 100 } });
    const info = JSON.parse(qemuImg('info', '-U', '--output=json', image('pull-top.qcow2'))) as Record<string, unknown>;
    expect(info).not.toHaveProperty('backing-filename');
    // the base is out of the chain: without it the guest still reads the pulled data
    await rm(image('pull-base.qcow2'));
    expect(await shell!.run('echo 3 > /proc/sys/vm/drop_caches; head -c 4 /dev/vdc')).toBe('AAAA');
    await waitFor('the PULL event', () => blockJobEvents('vdc').includes('PULL:COMPLETED'), 10_000);
    const none = await api('GET', '/domains/bj/disks/vdc/job');
    expect(none.body?.code).toBe('NOT_FOUND');
  }, 120_000);

  it('blockcommit merges the overlay into its base and pivots the disk onto the base', async () => {
    qemuImg('create', '-q', '-f', 'qcow2', image('commit-base.qcow2'), '16M');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', image('commit-base.qcow2'), '-F', 'qcow2', image('commit-top.qcow2'));
    await plug('vdd', image('commit-top.qcow2'));
    await shell!.until('[ -e /dev/vdd ] && echo yes || echo none', (output) => output === 'yes');
    await shell!.run('printf COMMITTED > /dev/vdd && sync && echo done');
    expect(await headOf(image('commit-base.qcow2'), 9)).not.toBe('COMMITTED');

    const done = await finished(await ok<AsyncOperation>('POST', '/domains/bj/disks/vdd/commit', {}, 202));
    expect(done.status, JSON.stringify(done.error)).toBe('success');
    expect(await headOf(image('commit-base.qcow2'), 9)).toBe('COMMITTED');
    const now = await ok<Domain>('GET', '/domains/bj');
    expect(now.liveDisks?.find((disk) => disk.target === 'vdd')?.source).toEqual({ path: image('commit-base.qcow2') });
    expect(await shell!.run('head -c 9 /dev/vdd')).toBe('COMMITTED');
    // QEMU calls an active commit a commit job; libvirt (and virtbus) says ACTIVE_COMMIT: READY, then COMPLETED once pivoted
    await waitFor('the commit events', () => blockJobEvents('vdd').join() === 'ACTIVE_COMMIT:READY,ACTIVE_COMMIT:COMPLETED', 10_000);
  }, 120_000);

  it('blockcopy mirrors the disk into a new file, pivots onto it, and the guest still reads its data', async () => {
    const done = await finished(await ok<AsyncOperation>('POST', '/domains/bj/disks/vdd/copy', { destination: image('copy.qcow2'), pivot: true }, 202));
    expect(done.status, JSON.stringify(done.error)).toBe('success');
    const now = await ok<Domain>('GET', '/domains/bj');
    expect(now.liveDisks?.find((disk) => disk.target === 'vdd')?.source).toEqual({ path: image('copy.qcow2') });
    expect(await headOf(image('copy.qcow2'), 9)).toBe('COMMITTED');
    expect(await shell!.run('echo 3 > /proc/sys/vm/drop_caches; head -c 9 /dev/vdd')).toBe('COMMITTED');
    await waitFor('the copy events', () => blockJobEvents('vdd').slice(2).join() === 'COPY:READY,COPY:COMPLETED', 10_000);
  }, 120_000);

  it('cancels a running (bandwidth-limited) copy: the operation ends cancelled, the disk stays on its image', async () => {
    await shell!.run('head -c 8388608 /dev/urandom > /dev/vdb && sync && echo done');
    const started = await ok<AsyncOperation>('POST', '/domains/bj/disks/vdb/copy', { destination: image('slow.qcow2'), bandwidth: 256 * 1024 }, 202);
    const job = await ok<{ type: string; ready: boolean; bandwidth: number }>('GET', '/domains/bj/disks/vdb/job');
    expect(job).toMatchObject({ type: 'COPY', ready: false, bandwidth: 256 * 1024 });
    const busy = await api('POST', '/domains/bj/disks/vdb/pull', {});
    expect(busy.body?.code).toBe('OPERATION_INVALID');
    await ok('DELETE', '/domains/bj/disks/vdb/job');
    expect(await finished(started)).toMatchObject({ status: 'cancelled' });
    const now = await ok<Domain>('GET', '/domains/bj');
    expect(now.liveDisks?.find((disk) => disk.target === 'vdb')?.source).toEqual({ path: image('data.qcow2') });
    await waitFor('the CANCELED event', () => blockJobEvents('vdb').includes('COPY:CANCELED'), 10_000);
    expect((await api('GET', '/domains/bj/disks/vdb/job')).body?.code).toBe('NOT_FOUND');
  }, 120_000);

  it('a throttled copy is the domain job of libvirt_domain_job_info_*; after an agent SIGKILL it is found again (query-block-jobs) with progress and cancelled', async () => {
    await ok<AsyncOperation>('POST', '/domains/bj/disks/vdb/copy', { destination: image('adopted.qcow2'), bandwidth: 256 * 1024 }, 202);
    const sample = async (name: string) => {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      return Number(new RegExp(`^${name}\\{domain="bj",[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1]);
    };
    await waitFor('the job in the metrics', async () => (await sample('libvirt_domain_job_info_data_total_bytes')) > 0, 10_000);
    expect(await sample('libvirt_domain_job_info_type')).toBe(2);
    expect(await sample('libvirt_domain_info')).toBe(1);

    await shell!.close();
    shell = undefined;
    await agent!.kill('SIGKILL');
    agent = await startAgent();
    let adopted: AsyncOperation | undefined;
    await waitFor('the re-tracked copy', async () => {
      const { operations } = await ok<{ operations: AsyncOperation[] }>('GET', '/operations');
      adopted = operations.find((operation) => operation.description === 'block copy of vdb on bj' && operation.progress.bytesTotal > 0);
      return adopted !== undefined;
    }, 30_000);
    expect(adopted).toMatchObject({ status: 'running', resources: { domain: domain.uuid } });
    expect(await ok('GET', '/domains/bj/disks/vdb/job')).toMatchObject({ type: 'COPY', ready: false });
    expect((await api('POST', '/domains/bj/disks/vdb/pull', {})).body?.code).toBe('OPERATION_INVALID');
    await ok('DELETE', '/domains/bj/disks/vdb/job');
    expect(await finished(adopted!)).toMatchObject({ status: 'cancelled' });
    expect((await ok<Domain>('GET', '/domains/bj')).liveDisks?.find((disk) => disk.target === 'vdb')?.source).toEqual({ path: image('data.qcow2') });
  }, 120_000);

  it('refuses block jobs on a cdrom and on a shut-off domain', async () => {
    expect((await api('POST', '/domains/bj/disks/hda/pull', {})).body?.code).toBe('INVALID_ARG');
    await shell?.close();
    shell = undefined;
    await ok<Domain>('PUT', '/domains/bj/state', { action: 'destroy' });
    expect((await api('PUT', '/domains/bj/disks/vda/size', { sizeBytes: 64 * MiB })).body?.code).toBe('OPERATION_INVALID');
  }, 60_000);
});

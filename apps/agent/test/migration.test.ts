import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Subjects, VirtError, type AsyncOperation, type Domain, type DomainEvent, type LifecycleEvent, type MigrationRequest } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { ensureCertificateAuthority, ensureMigrationTlsDir } from '@virtbus/security';
import { ensureTestGuest, GUEST_FLAGS, GUEST_MARKERS, hasBinaryOrSkip, rejectsWith, spawnAgent, startNatsServer, type AgentProcess, type NatsServerHandle, type TestGuest, waitFor } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const QEMU = hasBinaryOrSkip('qemu-system-x86_64');

let nats: NatsServerHandle;
let nc: NatsConnection;
let client: VirtClient;
let work: string;
const agents: Record<'a' | 'b', AgentProcess | undefined> = { a: undefined, b: undefined };
const events: LifecycleEvent[] = [];
const domainEvents: DomainEvent[] = [];
let uuid = '';
let guest: TestGuest;

const stateDir = (node: 'a' | 'b') => join(work, node);
const consoleLog = (node: 'a' | 'b') => join(stateDir(node), 'drivers', 'qemu', uuid, 'console.log');

async function startAgent(node: 'a' | 'b'): Promise<void> {
  agents[node] = await spawnAgent({
    node,
    natsUrl: nats.url,
    stateDir: stateDir(node),
    drivers: 'qemu',
    extraArgs: ['--migration-tls-dir', join(work, `tls-${node}`)],
  });
}

async function counters(node: 'a' | 'b'): Promise<number[]> {
  const text = await readFile(consoleLog(node), 'utf8').catch(() => '');
  return [...text.matchAll(new RegExp(`${GUEST_MARKERS.counter} (\\d+)`, 'g'))].map((match) => Number(match[1]));
}

const domainOn = (node: 'a' | 'b') => client.call(node, 'domain.get', { id: uuid }) as Promise<Domain>;
const operation = (node: 'a' | 'b', id: string) => client.call(node, 'operation.get', { id }) as Promise<AsyncOperation>;
const finished = (node: 'a' | 'b', id: string) =>
  waitFor(`operation ${id}`, async () => {
    const op = await operation(node, id);
    return op.status !== 'running' && op;
  }).catch(async (error: unknown) => {
    throw new Error(`${(error as Error).message}: ${JSON.stringify(await operation(node, id))}`);
  });
const migrate = (from: 'a' | 'b', migration: MigrationRequest) => client.migrate(from, uuid, migration, { timeoutMs: 30_000 });

async function typeOn(node: 'a' | 'b', text: string): Promise<void> {
  const { session } = await client.call(node, 'domain.console.attach', { id: uuid, force: true });
  await client.call(node, 'domain.console.write', { id: uuid, session, data: Buffer.from(text).toString('base64') });
  await client.call(node, 'domain.console.detach', { id: uuid, session });
}

/** Types `command` and waits until the guest ran it (a fixed sleep lost to a loaded TCG guest): the shell computes the done marker, so the echoed input never matches. */
async function runOn(node: 'a' | 'b', command: string, mark: number): Promise<void> {
  await typeOn(node, `${command}; echo done-$((${mark}+1))\n`);
  await waitFor(`${command} on ${node}`, async () => (await readFile(consoleLog(node), 'utf8').catch(() => '')).includes(`done-${mark + 1}`));
}

const lifecycle = (node: string) => events.filter((event) => event.node === node && event.uuid === uuid).map((event) => `${event.type}/${event.detail}`);

describe.skipIf(!QEMU)('live migration between two agents (real QEMU, TCG guest)', () => {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'virtbus-mig-'));
    guest = await ensureTestGuest();
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    client = new VirtClient(nc);
    nc.subscribe('virt.v1.*.events.domain.>', {
      callback: (_error, msg) => {
        events.push(JSON.parse(new TextDecoder().decode(msg.data)) as LifecycleEvent);
      },
    });
    nc.subscribe(Subjects.eventKindFilter({ kind: 'domainevent' }), { callback: (_error, msg) => void domainEvents.push(msg.json<DomainEvent>()) });
    for (const node of ['a', 'b'] as const) await ensureMigrationTlsDir(join(work, `tls-${node}`), { node, hosts: ['127.0.0.1'], ca: await sharedCa() });
    await Promise.all([startAgent('a'), startAgent('b')]);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(work, 'disk.qcow2'), '16M']);
    const domain = (await client.call('a', 'domain.define', {
      name: 'mover',
      driver: 'qemu',
      memory: 256,
      os: { kernel: guest.kernel, initrd: guest.initrd, cmdline: `${guest.cmdline} ${GUEST_FLAGS.counter}` },
      disks: [{ source: { path: join(work, 'disk.qcow2') }, format: 'qcow2' }],
    })) as Domain;
    uuid = domain.uuid;
    await client.call('a', 'domain.state', { id: uuid, change: { action: 'start' } });
    await waitFor('the counter on a', async () => (await counters('a')).length >= 2);
  }, 180_000);

  afterAll(async () => {
    for (const node of ['a', 'b'] as const) {
      await client?.call(node, 'domain.state', { id: uuid, change: { action: 'destroy' } }).catch(() => undefined);
      await agents[node]?.stop();
    }
    await nc?.close();
    await nats?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  let caDir: { cert: string; key: string } | undefined;
  async function sharedCa() {
    if (caDir) return caDir;
    caDir = await ensureCertificateAuthority(join(work, 'ca'));
    return caDir;
  }

  it('refuses an incompatible destination with a clear error before anything starts', async () => {
    const failure = await migrate('a', { destination: 'b', copyStorage: 'all', diskPaths: { vda: join(work, 'disk.qcow2') } }).catch((error: unknown) => error);
    expect(VirtError.is(failure, 'MIGRATION_INCOMPATIBLE'), String(failure)).toBe(true);
    expect(String((failure as Error).message)).toMatch(/already exists/);
  });

  it('an aborted migration leaves the guest running on the source, counting', async () => {
    const started = await migrate('a', { destination: 'b', bandwidthMiBs: 1 });
    await waitFor('RAM being sent', async () => ((await operation('a', started.id)).migration?.ramTransferredBytes ?? 0) > 0);
    await client.call('a', 'operation.cancel', { id: started.id });
    const ended = await finished('a', started.id);
    expect(ended.status).toBe('cancelled');
    expect((await domainOn('a')).state).toBe('running');
    await expect(domainOn('b')).rejects.toThrow(/no domain/);
    const before = Math.max(...(await counters('a')));
    await waitFor('the counter going on', async () => Math.max(...(await counters('a'))) > before + 1);
  });

  it('a source agent killed mid-migration comes back with the guest running and the destination cleaned up', async () => {
    const started = await migrate('a', { destination: 'b', bandwidthMiBs: 1 });
    await waitFor('RAM being sent', async () => ((await operation('a', started.id)).migration?.ramTransferredBytes ?? 0) > 0);
    await agents.a!.kill('SIGKILL');
    await startAgent('a');
    expect((await domainOn('a')).state).toBe('running');
    await waitFor('the destination to drop the incoming domain', async () => (await client.call('b', 'domain.list', {})).domains.length === 0);
    const before = Math.max(...(await counters('a')));
    await waitFor('the counter going on', async () => Math.max(...(await counters('a'))) > before + 1);
  });

  it('a destination agent killed mid-migration drops its incoming QEMU on restart; the source keeps the guest', async () => {
    const started = await migrate('a', { destination: 'b', bandwidthMiBs: 1 });
    await waitFor('RAM being sent', async () => ((await operation('a', started.id)).migration?.ramTransferredBytes ?? 0) > 0);
    await agents.b!.kill('SIGKILL');
    await startAgent('b');
    expect((await finished('a', started.id)).status).toBe('failure');
    expect((await domainOn('a')).state).toBe('running');
    expect((await client.call('b', 'domain.list', {})).domains).toEqual([]);
    expect(readdirSync(join(stateDir('b'), 'migrations'))).toEqual([]);
  });

  it('migrates live over TLS: the count continues on b, a reports it shut off (migrated)', async () => {
    // an internal snapshot (RAM included) lives in the shared image; its metadata moves with the domain
    await client.call('a', 'domain.snapshot.create', { id: uuid, snapshot: { name: 'before-move' } });
    const started = await migrate('a', { destination: 'b', tls: true, maxDowntimeMs: 300 });
    const ended = await finished('a', started.id);
    expect(ended.status, JSON.stringify(ended.error)).toBe('success');
    expect(ended.migration?.phase).toBe('done');
    const lastOnA = Math.max(...(await counters('a')));
    const onB = await waitFor('the counter on b', async () => {
      const seen = await counters('b');
      return seen.length > 0 && seen;
    });
    expect(onB[0]).toBeGreaterThan(lastOnA);
    expect(onB[0]).toBeLessThan(lastOnA + 20);
    expect((await domainOn('b')).state).toBe('running');
    expect(await domainOn('a')).toMatchObject({ state: 'shutoff', reason: 'migrated' });
    await waitFor('events on both nodes', async () => lifecycle('a').includes('STOPPED/MIGRATED') && lifecycle('b').includes('RESUMED/MIGRATED'));
    expect(lifecycle('b')).toEqual(expect.arrayContaining(['DEFINED/ADDED', 'STARTED/MIGRATED', 'RESUMED/MIGRATED']));
    // the source's MIGRATION_ITERATION per memory pass (QMP MIGRATION_PASS) and its JOB_COMPLETED with the job's figures
    await waitFor('JOB_COMPLETED on a', () => domainEvents.some((event) => event.node === 'a' && event.event === 'JOB_COMPLETED'));
    const fromA = domainEvents.filter((event) => event.node === 'a' && event.uuid === uuid);
    expect(fromA.find((event) => event.event === 'MIGRATION_ITERATION')).toMatchObject({ eventId: 20, details: { iteration: expect.any(Number) } });
    expect(fromA.find((event) => event.event === 'JOB_COMPLETED')).toMatchObject({ eventId: 21, details: { params: expect.objectContaining({ operation: 'migration-out', memory_total: expect.any(Number) }) } });
    for (const node of ['a', 'b'] as const) expect(readdirSync(join(stateDir(node), 'migrations'))).toEqual([]);
    expect(await client.call('b', 'domain.snapshot.list', { id: uuid })).toMatchObject({ current: 'before-move', snapshots: [{ name: 'before-move', memory: true, kind: 'internal' }] });
    await client.call('a', 'domain.undefine', { id: uuid });
  });

  it('copies a disk that is not shared: the guest reads its marker back on the destination', async () => {
    await runOn('b', 'echo migmark-4711 > /dev/vda; sync', 4711);
    const copyPath = join(work, 'disk-copy.qcow2');
    // an NBD copy carries no internal snapshot: refused until the snapshot is deleted (on b, in the image b runs from)
    await rejectsWith(migrate('b', { destination: 'a', copyStorage: 'all', diskPaths: { vda: copyPath } }), 'MIGRATION_INCOMPATIBLE');
    const internal = () => execFileSync('qemu-img', ['snapshot', '-U', '-l', join(work, 'disk.qcow2')], { encoding: 'utf8' });
    expect(internal()).toContain('before-move');
    await client.call('b', 'domain.snapshot.delete', { id: uuid, snapshot: 'before-move' });
    expect(internal()).not.toContain('before-move');
    const started = await migrate('b', { destination: 'a', copyStorage: 'all', diskPaths: { vda: copyPath }, undefineSource: true });
    const ended = await finished('b', started.id);
    expect(ended.status, JSON.stringify(ended.error)).toBe('success');
    expect(ended.migration?.diskTotalBytes).toBeGreaterThan(0);
    const onA = await domainOn('a');
    expect(onA.state).toBe('running');
    expect(onA.config.disks[0]?.source).toEqual({ path: copyPath });
    await expect(domainOn('b')).rejects.toThrow(/no domain/);
    await typeOn('a', 'sync; echo 3 > /proc/sys/vm/drop_caches; head -c 12 /dev/vda | tr a-z A-Z; echo\n');
    await waitFor('the marker read back on a', async () => (await readFile(consoleLog('a'), 'utf8')).includes('MIGMARK-4711'));
    const raw = join(work, 'copy.raw');
    execFileSync('qemu-img', ['convert', '-U', '-O', 'raw', copyPath, raw]);
    expect((await readFile(raw)).subarray(0, 12).toString()).toBe('migmark-4711');
  });

  it('switches to post-copy when asked: the destination resumes before the last pages arrive', async () => {
    const lastOnA = Math.max(...(await counters('a')));
    const started = await migrate('a', { destination: 'b', postCopy: true, autoConverge: true, bandwidthMiBs: 16, undefineSource: true });
    const ended = await finished('a', started.id);
    expect(ended.status, JSON.stringify(ended.error)).toBe('success');
    await waitFor('RESUMED/POSTCOPY on b', async () => lifecycle('b').includes('RESUMED/POSTCOPY'));
    expect((await domainOn('b')).state).toBe('running');
    const onB = await waitFor('the counter on b', async () => {
      const seen = await counters('b');
      return seen.length > 1 && seen;
    });
    expect(onB[0]).toBeGreaterThan(lastOnA);
  });

  it('a source QEMU that dies mid-migration fails the operation, and the destination drops its incoming domain', async () => {
    const started = await migrate('b', { destination: 'a', bandwidthMiBs: 1 });
    await waitFor('RAM being sent', async () => ((await operation('b', started.id)).migration?.ramTransferredBytes ?? 0) > 0);
    await waitFor('the incoming domain on a', async () => (await client.call('a', 'domain.list', {})).domains.length === 1);
    const stored = JSON.parse(await readFile(join(stateDir('b'), 'domains', `${uuid}.json`), 'utf8')) as { runtime: { pid: number } };
    process.kill(stored.runtime.pid, 'SIGKILL');
    expect((await finished('b', started.id)).status).toBe('failure');
    await waitFor('a to drop the incoming domain', async () => (await client.call('a', 'domain.list', {})).domains.length === 0);
    expect(readdirSync(join(stateDir('a'), 'migrations'))).toEqual([]);
  });

  it('migrates a provisioned domain: its root volume is made anew in the mapped pool on the destination and copied over NBD', async () => {
    await client.call('a', 'volume.create', { pool: 'default', volume: { name: 'base.qcow2', capacity: '32M' } });
    const provisioned = await client.call('a', 'domain.define.image', {
      domain: { name: 'prov', driver: 'qemu', memory: 256, os: { kernel: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline } },
      image: { pool: 'default', volume: 'base.qcow2' },
    });
    uuid = provisioned.uuid;
    await client.call('a', 'domain.state', { id: uuid, change: { action: 'start' } });
    await waitFor('the guest on a', async () => (await readFile(consoleLog('a'), 'utf8').catch(() => '')).includes(GUEST_MARKERS.ready), 120_000);
    await runOn('a', 'echo provmark-1234 > /dev/vda; sync', 1234);
    await rejectsWith(migrate('a', { destination: 'b', copyStorage: 'all', poolMap: { default: 'nosuch' } }), 'MIGRATION_INCOMPATIBLE');
    await rejectsWith(migrate('a', { destination: 'b' }), 'MIGRATION_INCOMPATIBLE');
    const started = await migrate('a', { destination: 'b', copyStorage: 'all', poolMap: { default: 'default' } });
    const ended = await finished('a', started.id);
    expect(ended.status, JSON.stringify(ended.error)).toBe('success');
    const onB = await domainOn('b');
    expect(onB.state).toBe('running');
    expect(onB.config.disks.map((disk) => disk.source)).toEqual([{ pool: 'default', volume: 'prov-root.qcow2' }, { pool: 'default', volume: 'prov-cidata.iso' }]);
    const volume = await client.call('b', 'volume.get', { pool: 'default', volume: 'prov-root.qcow2' });
    expect(volume.capacityBytes).toBeGreaterThan(0);
    // the read-only cloud-init seed, which QEMU cannot mirror, travelled inside the migration
    const seed = async (node: 'a' | 'b') => readFile((await client.call(node, 'volume.get', { pool: 'default', volume: 'prov-cidata.iso' })).path);
    expect((await seed('b')).equals(await seed('a'))).toBe(true);
    await typeOn('b', 'sync; echo 3 > /proc/sys/vm/drop_caches; head -c 13 /dev/vda | tr a-z A-Z; echo\n');
    await waitFor('the marker read back on b', async () => (await readFile(consoleLog('b'), 'utf8')).includes('PROVMARK-1234'));
  }, 180_000);

  it('an EFI domain keeps its NVRAM: an offline migration carries the per-domain VARS file', async () => {
    const efi = await client.call('a', 'domain.define', { name: 'efi-mover', driver: 'qemu', memory: 64, os: { firmware: 'efi' } });
    // the first start copies OVMF's template into the domain's NVRAM
    await client.call('a', 'domain.state', { id: efi.uuid, change: { action: 'start' } });
    await client.call('a', 'domain.state', { id: efi.uuid, change: { action: 'destroy' } });
    const nvram = (node: 'a' | 'b') => readFile(join(stateDir(node), 'nvram', `${efi.uuid}_VARS.fd`));
    const ended = await finished('a', (await client.migrate('a', efi.uuid, { destination: 'b', offline: true }, { timeoutMs: 30_000 })).id);
    expect(ended.status, JSON.stringify(ended.error)).toBe('success');
    expect((await nvram('b')).equals(await nvram('a'))).toBe(true);
    for (const node of ['a', 'b'] as const) await client.call(node, 'domain.undefine', { id: efi.uuid });
  });
});

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Subscription } from '@nats-io/transport-node';
import { type DomainSnapshotEvent, type LifecycleEvent } from '@virtbus/api-contract';
import { setTimeout as sleep } from 'node:timers/promises';
import { type AgentProcess, ensureBusyboxRootfs, ensureTestGuest, GUEST_FLAGS, GUEST_MARKERS, hasBinaryOrSkip, rejectsWith, spawnAgent, useAgentBus } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const NODE = 'snap';
const QEMU = hasBinaryOrSkip('qemu-system-x86_64');
const LXC = hasBinaryOrSkip('lxc-start');
const bus = useAgentBus('virtbus-snapshot-test-');
let agent: AgentProcess;
let eventsSub: Subscription;
const events: (LifecycleEvent | DomainSnapshotEvent)[] = [];

async function eventsFor(uuid: string, count: number): Promise<string[]> {
  // events go out through two fsyncs (the agent's log, JetStream) on a disk shared with other work: seconds when it is busy
  const deadline = Date.now() + 30_000;
  const seen = () =>
    events
      .filter((event) => event.uuid === uuid)
      .sort((a, b) => a.seq - b.seq)
      .map((event) => (event.kind === 'snapshot.lifecycle' ? `snapshot ${event.type} ${event.snapshot}` : `${event.type}/${event.detail}`));
  while (seen().length < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  return seen();
}

beforeAll(async () => {
  eventsSub = bus.nc.subscribe(`virt.v1.${NODE}.events.>`, { callback: (_error, msg) => void events.push(msg.json()) });
  agent = await spawnAgent({ node: NODE, natsUrl: bus.server.url, stateDir: join(bus.dir, 'state'), drivers: 'test,qemu,lxc', env: { VIRTBUS_METRICS_ADDRESS: 'off' } });
});

afterAll(async () => {
  eventsSub?.unsubscribe();
  await agent?.stop();
});

describe('snapshots and save/restore on the test driver', () => {
  it('keeps a snapshot tree, reverts, deletes, saves, restores and resumes from a managed save', async () => {
    const domain = await bus.client.call(NODE, 'domain.define', { name: 'tsnap', driver: 'test', disks: [{ source: { path: '/var/lib/virtbus/tsnap.qcow2' } }] });
    const id = domain.uuid;
    await bus.client.call(NODE, 'domain.state', { id, change: { action: 'start' } });
    const a = await bus.client.call(NODE, 'domain.snapshot.create', { id, snapshot: { name: 'a' } });
    expect(a).toMatchObject({ kind: 'internal', memory: true, state: 'running', current: true, children: [] });
    const b = await bus.client.call(NODE, 'domain.snapshot.create', { id, snapshot: { name: 'b', kind: 'external' } });
    expect(b.disks).toEqual([{ target: 'vda', file: '/var/lib/virtbus/tsnap.qcow2', overlay: '/var/lib/virtbus/tsnap-vda.b.qcow2' }]);
    expect((await bus.client.call(NODE, 'domain.get', { id })).config.disks[0]?.source).toEqual({ path: '/var/lib/virtbus/tsnap-vda.b.qcow2' });
    await rejectsWith(bus.client.call(NODE, 'domain.snapshot.create', { id, snapshot: { name: 'a' } }), 'OPERATION_INVALID');

    let reverted = await bus.client.call(NODE, 'domain.snapshot.revert', { id, snapshot: 'a' });
    expect(reverted).toMatchObject({ state: 'running', reason: 'from_snapshot' });
    await bus.client.call(NODE, 'domain.snapshot.create', { id, snapshot: { name: 'c' } });
    let list = await bus.client.call(NODE, 'domain.snapshot.list', { id });
    expect(list.snapshots.map((s) => [s.name, s.parent ?? null, s.children])).toEqual([
      ['a', null, ['b', 'c']],
      ['b', 'a', []],
      ['c', 'a', []],
    ]);
    expect(list.current).toBe('c');

    // external revert of a running domain restarts it on a fresh overlay over the snapshot's image
    reverted = await bus.client.call(NODE, 'domain.snapshot.revert', { id, snapshot: 'b' });
    expect(reverted.state).toBe('running');
    expect(reverted.config.disks[0]?.source).toMatchObject({ path: expect.stringMatching(/tsnap-vda\.b\.revert-[0-9a-z]+\.qcow2$/) });

    expect(await bus.client.call(NODE, 'domain.snapshot.delete', { id, snapshot: 'a', options: { mode: 'children-only', metadataOnly: true } })).toEqual({ deleted: ['b', 'c'] });
    expect(await bus.client.call(NODE, 'domain.snapshot.delete', { id, snapshot: 'a' })).toEqual({ deleted: ['a'] });
    list = await bus.client.call(NODE, 'domain.snapshot.list', { id });
    expect(list).toEqual({ snapshots: [], remaining: 0 });
    await rejectsWith(bus.client.call(NODE, 'domain.snapshot.get', { id, snapshot: 'a' }), 'NOT_FOUND');

    const saved = await bus.client.call(NODE, 'domain.save', { id, target: { pool: 'default', volume: 'tsnap.save' } });
    expect(saved).toMatchObject({ state: 'shutoff', reason: 'saved' });
    await rejectsWith(bus.client.call(NODE, 'domain.save', { id, target: { pool: 'default', volume: 'tsnap.save' } }), 'OPERATION_INVALID');
    const restored = await bus.client.call(NODE, 'domain.restore', { pool: 'default', volume: 'tsnap.save' });
    expect(restored).toMatchObject({ uuid: id, state: 'running', reason: 'restored' });

    // a save file brings its domain along when it was undefined meanwhile
    await bus.client.call(NODE, 'domain.save', { id, target: { pool: 'default', volume: 'tsnap2.save' } });
    await bus.client.call(NODE, 'domain.undefine', { id });
    expect(await bus.client.call(NODE, 'domain.restore', { pool: 'default', volume: 'tsnap2.save' })).toMatchObject({ uuid: id, name: 'tsnap', state: 'running', reason: 'restored' });

    await bus.client.call(NODE, 'domain.managedsave', { id });
    expect(await bus.client.call(NODE, 'domain.managedsave.get', { id })).toMatchObject({ present: true });
    const resumed = await bus.client.call(NODE, 'domain.state', { id, change: { action: 'start' } });
    expect(resumed).toMatchObject({ state: 'running', reason: 'restored' });
    expect(await bus.client.call(NODE, 'domain.managedsave.get', { id })).toMatchObject({ present: false });
    await bus.client.call(NODE, 'domain.managedsave', { id });
    await bus.client.call(NODE, 'domain.managedsave.remove', { id });
    expect(await bus.client.call(NODE, 'domain.state', { id, change: { action: 'start' } })).toMatchObject({ state: 'running', reason: 'booted' });

    expect(await eventsFor(id, 24)).toEqual([
      'DEFINED/ADDED',
      'STARTED/BOOTED',
      'snapshot CREATED a',
      'snapshot CREATED b',
      'snapshot REVERTED a',
      'SUSPENDED/FROM_SNAPSHOT',
      'RESUMED/FROM_SNAPSHOT',
      'snapshot CREATED c',
      'snapshot REVERTED b',
      'STOPPED/FROM_SNAPSHOT',
      'STARTED/FROM_SNAPSHOT',
      'snapshot DELETED b',
      'snapshot DELETED c',
      'snapshot DELETED a',
      'STOPPED/SAVED',
      'STARTED/RESTORED',
      'STOPPED/SAVED',
      'UNDEFINED/REMOVED',
      'DEFINED/ADDED',
      'STARTED/RESTORED',
      'STOPPED/SAVED',
      'STARTED/RESTORED',
      'STOPPED/SAVED',
      'STARTED/BOOTED',
    ]);
  });

  it.skipIf(!LXC)('answers OPERATION_UNSUPPORTED for lxc domains', async () => {
    const rootfs = await ensureBusyboxRootfs();
    const domain = await bus.client.call(NODE, 'domain.define', { name: 'lsnap', driver: 'lxc', container: { rootfs: { path: rootfs } } });
    expect(domain).toMatchObject({ driver: 'lxc', state: 'shutoff' });
    await rejectsWith(bus.client.call(NODE, 'domain.snapshot.create', { id: domain.uuid, snapshot: {} }), 'OPERATION_UNSUPPORTED');
    await rejectsWith(bus.client.call(NODE, 'domain.managedsave', { id: domain.uuid }), 'OPERATION_UNSUPPORTED');
  });
});

describe.skipIf(!QEMU)('snapshots and save/restore on QEMU (TCG guest with an ext4 disk)', () => {
  let id = '';
  let disk = '';
  const consoleLog = () => join(bus.dir, 'state', 'drivers', 'qemu', id, 'console.log');
  const log = () => readFile(consoleLog(), 'utf8').catch(() => '');
  const counters = async () => [...(await log()).matchAll(new RegExp(`${GUEST_MARKERS.counter} (\\d+)`, 'g'))].map((match) => Number(match[1]));
  async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 90_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await check();
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; console tail: ${(await log()).slice(-400)}`);
      await sleep(100);
    }
  }
  /** Types a shell line whose answer is `<tag>-<n>` computed by the guest (so the echoed command never matches). */
  async function ask(line: string, tag: string, n: number): Promise<void> {
    const { session } = await bus.client.call(NODE, 'domain.console.attach', { id, force: true });
    await bus.client.call(NODE, 'domain.console.write', { id, session, data: Buffer.from(`${line}\n`).toString('base64') });
    await bus.client.call(NODE, 'domain.console.detach', { id, session });
    await waitFor(`${tag}-${n}`, async () => (await log()).includes(`${tag}-${n}\r`) || (await log()).includes(`${tag}-${n}\n`));
  }
  /** Whether the file exists in the guest, answered as E-n (exists) or G-n (gone). */
  async function guestHas(file: string, n: number): Promise<boolean> {
    const { session } = await bus.client.call(NODE, 'domain.console.attach', { id, force: true });
    const line = `test -e ${file} && echo E-$((${n}+0)) || echo G-$((${n}+0))\n`;
    await bus.client.call(NODE, 'domain.console.write', { id, session, data: Buffer.from(line).toString('base64') });
    await bus.client.call(NODE, 'domain.console.detach', { id, session });
    const answer = await waitFor(`answer ${n}`, async () => new RegExp(`(?:^|\\n)([EG])-${n}\\r?\\n`).exec(await log())?.[1]);
    return answer === 'E';
  }
  const booted = () => waitFor('the guest shell', async () => (await log()).includes(GUEST_MARKERS.ready));
  const snapshotImages = () => execFileSync('qemu-img', ['snapshot', '-l', '-U', disk]).toString();

  beforeAll(async () => {
    const guest = await ensureTestGuest();
    const raw = join(bus.dir, 'disk.raw');
    disk = join(bus.dir, 'disk.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', raw, '32M']);
    execFileSync('mkfs.ext4', ['-q', '-F', raw]);
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, disk]);
    const domain = await bus.client.call(NODE, 'domain.define', {
      name: 'qsnap',
      driver: 'qemu',
      memory: 256,
      os: { kernel: guest.kernel, initrd: guest.initrd, cmdline: `${guest.cmdline} ${GUEST_FLAGS.counter}` },
      disks: [{ source: { path: disk }, format: 'qcow2' }],
    });
    id = domain.uuid;
    await bus.client.call(NODE, 'domain.state', { id, change: { action: 'start' } });
    await booted();
    await ask('mkdir -p /mnt && mount /dev/vda /mnt && echo M-$((1+1))', 'M', 2);
  }, 240_000);

  afterAll(async () => {
    await bus.client.call(NODE, 'domain.state', { id, change: { action: 'destroy' } }).catch(() => undefined);
  });

  it('reverts an internal snapshot with memory: a file written after it is gone in the guest', async () => {
    const taken = await bus.client.call(NODE, 'domain.snapshot.create', { id, snapshot: { name: 'int1' } }, { timeoutMs: 120_000 });
    expect(taken).toMatchObject({ kind: 'internal', memory: true, state: 'running', disks: [{ target: 'vda', file: disk }] });
    await ask('echo data > /mnt/after-int && sync && echo W-$((2+1))', 'W', 3);
    expect(await guestHas('/mnt/after-int', 10)).toBe(true);
    const reverted = await bus.client.call(NODE, 'domain.snapshot.revert', { id, snapshot: 'int1' }, { timeoutMs: 120_000 });
    expect(reverted).toMatchObject({ state: 'running', reason: 'from_snapshot' });
    expect(await guestHas('/mnt/after-int', 11)).toBe(false);
  }, 180_000);

  it('reverts an external snapshot: the overlay written after it is discarded and the guest boots on a fresh one', async () => {
    await ask('sync && echo S-$((3+1))', 'S', 4);
    const taken = await bus.client.call(NODE, 'domain.snapshot.create', { id, snapshot: { name: 'ext1', kind: 'external' } }, { timeoutMs: 120_000 });
    const overlay = taken.disks[0]!.overlay!;
    expect(taken).toMatchObject({ kind: 'external', memory: false, disks: [{ target: 'vda', file: disk, overlay: expect.stringMatching(/qsnap-vda\.ext1\.qcow2$/) }] });
    expect((await bus.client.call(NODE, 'domain.get', { id })).config.disks[0]?.source).toEqual({ path: overlay });
    await ask('echo data > /mnt/after-ext && sync && echo W-$((4+1))', 'W', 5);
    expect(await guestHas('/mnt/after-ext', 12)).toBe(true);
    const reverted = await bus.client.call(NODE, 'domain.snapshot.revert', { id, snapshot: 'ext1' }, { timeoutMs: 120_000 });
    expect(reverted.state).toBe('running');
    const fresh = (reverted.config.disks[0]?.source as { path: string }).path;
    expect(fresh).toMatch(/qsnap-vda\.ext1\.revert-[0-9a-z]+\.qcow2$/);
    expect(existsSync(overlay)).toBe(false);
    await booted();
    await ask('mkdir -p /mnt && mount /dev/vda /mnt && echo M-$((5+1))', 'M', 6);
    expect(await guestHas('/mnt/after-ext', 13)).toBe(false);

    // deleting it merges the overlay back into the base image while the guest runs (active block-commit)
    expect(await bus.client.call(NODE, 'domain.snapshot.delete', { id, snapshot: 'ext1' }, { timeoutMs: 120_000 })).toEqual({ deleted: ['ext1'] });
    expect((await bus.client.call(NODE, 'domain.get', { id })).config.disks[0]?.source).toEqual({ path: disk });
    expect(existsSync(fresh)).toBe(false);
    await ask('echo kept > /mnt/after-delete && sync && echo D-$((6+1))', 'D', 7);
    expect(snapshotImages()).toContain('int1');
    expect(await bus.client.call(NODE, 'domain.snapshot.delete', { id, snapshot: 'int1' }, { timeoutMs: 120_000 })).toEqual({ deleted: ['int1'] });
    expect(snapshotImages()).not.toContain('int1');
    expect((await bus.client.call(NODE, 'domain.snapshot.list', { id })).snapshots).toEqual([]);
  }, 240_000);

  it('save then restore resumes the counter; managed save then start resumes it too', async () => {
    await waitFor('the counter', async () => (await counters()).length >= 2);
    const saved = await bus.client.call(NODE, 'domain.save', { id, target: { pool: 'default', volume: 'qsnap.save' } }, { timeoutMs: 120_000 });
    expect(saved).toMatchObject({ state: 'shutoff', reason: 'saved' });
    const lastBeforeSave = Math.max(...(await counters()));
    const restored = await bus.client.call(NODE, 'domain.restore', { pool: 'default', volume: 'qsnap.save' }, { timeoutMs: 120_000 });
    expect(restored).toMatchObject({ state: 'running', reason: 'restored' });
    const firstAfterRestore = await waitFor('a counter after restore', async () => (await counters())[0]);
    expect(firstAfterRestore).toBeGreaterThan(lastBeforeSave);
    expect(await guestHas('/mnt/after-delete', 14)).toBe(true);

    await waitFor('the counter going on', async () => (await counters()).length >= 2);
    expect(await bus.client.call(NODE, 'domain.managedsave', { id }, { timeoutMs: 120_000 })).toMatchObject({ state: 'shutoff', reason: 'saved' });
    const lastBeforeManaged = Math.max(...(await counters()));
    expect(await bus.client.call(NODE, 'domain.state', { id, change: { action: 'start' } }, { timeoutMs: 120_000 })).toMatchObject({ state: 'running', reason: 'restored' });
    expect(await waitFor('a counter after start', async () => (await counters())[0])).toBeGreaterThan(lastBeforeManaged);
    expect(await bus.client.call(NODE, 'domain.managedsave.get', { id })).toMatchObject({ present: false });
    console.log(`save/restore counters: ${lastBeforeSave} -> ${firstAfterRestore}; managed save: ${lastBeforeManaged}`);
  }, 180_000);

  it('takes, reverts and deletes internal and external snapshots of a shut-off domain', async () => {
    await bus.client.call(NODE, 'domain.state', { id, change: { action: 'destroy' } });
    await bus.client.call(NODE, 'domain.snapshot.create', { id, snapshot: { name: 'off-int' } });
    expect(snapshotImages()).toContain('off-int');
    // already shut off: the state (and its reason) stays, as libvirt reports no lifecycle change either
    expect(await bus.client.call(NODE, 'domain.snapshot.revert', { id, snapshot: 'off-int' })).toMatchObject({ state: 'shutoff' });
    const ext = await bus.client.call(NODE, 'domain.snapshot.create', { id, snapshot: { name: 'off-ext', kind: 'external' } });
    expect(existsSync(ext.disks[0]!.overlay!)).toBe(true);
    const reverted = await bus.client.call(NODE, 'domain.snapshot.revert', { id, snapshot: 'off-ext' });
    expect(reverted.state).toBe('shutoff');
    expect(existsSync(ext.disks[0]!.overlay!)).toBe(false);
    const list = await bus.client.call(NODE, 'domain.snapshot.list', { id });
    expect(list.snapshots.map((s) => [s.name, s.parent ?? null, s.current])).toEqual([
      ['off-int', null, false],
      ['off-ext', 'off-int', true],
    ]);
    expect(await bus.client.call(NODE, 'domain.snapshot.delete', { id, snapshot: 'off-int', options: { mode: 'children' } })).toEqual({ deleted: ['off-ext', 'off-int'] });
    expect((await bus.client.call(NODE, 'domain.get', { id })).config.disks[0]?.source).toEqual({ path: disk });
    expect(snapshotImages()).not.toContain('off-int');
    const lifecycle = events.filter((event) => event.uuid === id).map((event) => (event.kind === 'snapshot.lifecycle' ? `snapshot ${event.type}` : `${event.type}/${event.detail}`));
    for (const expected of ['STOPPED/FROM_SNAPSHOT', 'STARTED/FROM_SNAPSHOT', 'STOPPED/SAVED', 'STARTED/RESTORED', 'snapshot CREATED', 'snapshot REVERTED', 'snapshot DELETED']) {
      expect(lifecycle).toContain(expected);
    }
  }, 120_000);
});

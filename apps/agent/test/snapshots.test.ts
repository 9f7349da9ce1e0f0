import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { VirtError, type DomainSnapshotEvent, type LifecycleEvent } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { spawnAgent, startNatsServer, type AgentProcess, type NatsServerHandle } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const NODE = 'snap';
let nats: NatsServerHandle;
let nc: NatsConnection;
let client: VirtClient;
let agent: AgentProcess;
let workDir: string;
let eventsSub: Subscription;
const events: (LifecycleEvent | DomainSnapshotEvent)[] = [];

async function code(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (failure: unknown) => failure,
  );
  expect(error).toBeInstanceOf(VirtError);
  return (error as VirtError).code;
}

async function eventsFor(uuid: string, count: number): Promise<string[]> {
  const deadline = Date.now() + 5000;
  const seen = () =>
    events
      .filter((event) => event.uuid === uuid)
      .sort((a, b) => a.seq - b.seq)
      .map((event) => (event.kind === 'snapshot.lifecycle' ? `snapshot ${event.type} ${event.snapshot}` : `${event.type}/${event.detail}`));
  while (seen().length < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  return seen();
}

beforeAll(async () => {
  nats = await startNatsServer();
  workDir = await mkdtemp(join(tmpdir(), 'virtbus-snapshot-test-'));
  nc = await connect({ servers: nats.url });
  client = new VirtClient(nc);
  eventsSub = nc.subscribe(`virt.v1.${NODE}.events.>`, { callback: (_error, msg) => void events.push(msg.json()) });
  agent = await spawnAgent({ node: NODE, natsUrl: nats.url, stateDir: join(workDir, 'state'), drivers: 'test,qemu,lxc', env: { VIRTBUS_METRICS_ADDRESS: 'off' } });
});

afterAll(async () => {
  eventsSub?.unsubscribe();
  await agent?.stop();
  await nc?.close();
  await nats?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe('snapshots and save/restore on the test driver', () => {
  it('keeps a snapshot tree, reverts, deletes, saves, restores and resumes from a managed save', async () => {
    const domain = await client.call(NODE, 'domain.define', { name: 'tsnap', driver: 'test', disks: [{ source: { path: '/var/lib/virtbus/tsnap.qcow2' } }] });
    const id = domain.uuid;
    await client.call(NODE, 'domain.state', { id, change: { action: 'start' } });
    const a = await client.call(NODE, 'domain.snapshot.create', { id, snapshot: { name: 'a' } });
    expect(a).toMatchObject({ kind: 'internal', memory: true, state: 'running', current: true, children: [] });
    const b = await client.call(NODE, 'domain.snapshot.create', { id, snapshot: { name: 'b', kind: 'external' } });
    expect(b.disks).toEqual([{ target: 'vda', file: '/var/lib/virtbus/tsnap.qcow2', overlay: '/var/lib/virtbus/tsnap-vda.b.qcow2' }]);
    expect((await client.call(NODE, 'domain.get', { id })).config.disks[0]?.source).toEqual({ path: '/var/lib/virtbus/tsnap-vda.b.qcow2' });
    expect(await code(client.call(NODE, 'domain.snapshot.create', { id, snapshot: { name: 'a' } }))).toBe('OPERATION_INVALID');

    let reverted = await client.call(NODE, 'domain.snapshot.revert', { id, snapshot: 'a' });
    expect(reverted).toMatchObject({ state: 'running', reason: 'from_snapshot' });
    await client.call(NODE, 'domain.snapshot.create', { id, snapshot: { name: 'c' } });
    let list = await client.call(NODE, 'domain.snapshot.list', { id });
    expect(list.snapshots.map((s) => [s.name, s.parent ?? null, s.children])).toEqual([
      ['a', null, ['b', 'c']],
      ['b', 'a', []],
      ['c', 'a', []],
    ]);
    expect(list.current).toBe('c');

    // external revert of a running domain restarts it on a fresh overlay over the snapshot's image
    reverted = await client.call(NODE, 'domain.snapshot.revert', { id, snapshot: 'b' });
    expect(reverted.state).toBe('running');
    expect(reverted.config.disks[0]?.source).toMatchObject({ path: expect.stringMatching(/tsnap-vda\.b\.revert-[0-9a-z]+\.qcow2$/) });

    expect(await client.call(NODE, 'domain.snapshot.delete', { id, snapshot: 'a', options: { mode: 'children-only', metadataOnly: true } })).toEqual({ deleted: ['b', 'c'] });
    expect(await client.call(NODE, 'domain.snapshot.delete', { id, snapshot: 'a' })).toEqual({ deleted: ['a'] });
    list = await client.call(NODE, 'domain.snapshot.list', { id });
    expect(list).toEqual({ snapshots: [] });
    expect(await code(client.call(NODE, 'domain.snapshot.get', { id, snapshot: 'a' }))).toBe('NOT_FOUND');

    const saved = await client.call(NODE, 'domain.save', { id, target: { pool: 'default', volume: 'tsnap.save' } });
    expect(saved).toMatchObject({ state: 'shutoff', reason: 'saved' });
    expect(await code(client.call(NODE, 'domain.save', { id, target: { pool: 'default', volume: 'tsnap.save' } }))).toBe('OPERATION_INVALID');
    const restored = await client.call(NODE, 'domain.restore', { pool: 'default', volume: 'tsnap.save' });
    expect(restored).toMatchObject({ uuid: id, state: 'running', reason: 'restored' });

    await client.call(NODE, 'domain.managedsave', { id });
    expect(await client.call(NODE, 'domain.managedsave.get', { id })).toMatchObject({ present: true });
    const resumed = await client.call(NODE, 'domain.state', { id, change: { action: 'start' } });
    expect(resumed).toMatchObject({ state: 'running', reason: 'restored' });
    expect(await client.call(NODE, 'domain.managedsave.get', { id })).toMatchObject({ present: false });
    await client.call(NODE, 'domain.managedsave', { id });
    await client.call(NODE, 'domain.managedsave.remove', { id });
    expect(await client.call(NODE, 'domain.state', { id, change: { action: 'start' } })).toMatchObject({ state: 'running', reason: 'booted' });

    expect(await eventsFor(id, 20)).toEqual([
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
      'STARTED/RESTORED',
      'STOPPED/SAVED',
      'STARTED/BOOTED',
    ]);
  });

  it('answers OPERATION_UNSUPPORTED for lxc domains', async () => {
    const domain = await client.call(NODE, 'domain.define', { name: 'lsnap', driver: 'lxc' }).catch(() => undefined);
    if (!domain) return;
    expect(await code(client.call(NODE, 'domain.snapshot.create', { id: domain.uuid, snapshot: {} }))).toBe('OPERATION_UNSUPPORTED');
    expect(await code(client.call(NODE, 'domain.managedsave', { id: domain.uuid }))).toBe('OPERATION_UNSUPPORTED');
  });
});

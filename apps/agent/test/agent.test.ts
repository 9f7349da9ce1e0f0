import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Svcm } from '@nats-io/services';
import type { Subscription } from '@nats-io/transport-node';
import { AGENT_SERVICE_NAME, Subjects, type DomainEvent, type LifecycleEvent } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { type AgentProcess, collectBusEvents, rejectsWith, spawnAgent, tearDown, useNatsBus, useTempDir } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const bus = useNatsBus();
let client: VirtClient;
const work = useTempDir('virtbus-agent-test-');
const agents: AgentProcess[] = [];
const seen: LifecycleEvent[] = [];
let eventSub: Subscription;

async function eventsFor(uuid: string, count: number): Promise<LifecycleEvent[]> {
  // events go out through two fsyncs (the agent's log, JetStream) on a disk shared with other work: seconds when it is busy
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const matching = seen.filter((event) => event.uuid === uuid);
    if (matching.length >= count) return matching;
    await sleep(20);
  }
  return seen.filter((event) => event.uuid === uuid);
}

beforeAll(async () => {
  client = new VirtClient(bus.nc);
  eventSub = collectBusEvents(bus.nc, seen);
  agents.push(
    ...(await Promise.all(
      ['alpha', 'beta'].map((node) => spawnAgent({ node, natsUrl: bus.server.url, stateDir: join(work.path, node), env: { VIRTBUS_TEST_DRIVER_LATENCY_MS: '50' } })),
    )),
  );
});

afterAll(async () => {
  eventSub?.unsubscribe();
  await tearDown(agents);
});

describe('agent over a real NATS bus', () => {
  it('is discoverable through the NATS services API with its node name', async () => {
    const infos = [];
    for await (const info of await new Svcm(bus.nc).client().info(AGENT_SERVICE_NAME)) infos.push(info);
    expect(infos.map((info) => info.metadata?.node).sort()).toEqual(['alpha', 'beta']);
    const endpoints = infos[0]!.endpoints.map((endpoint) => endpoint.subject);
    expect(endpoints.some((subject) => subject.endsWith('.ro.domain.list'))).toBe(true);
    expect(endpoints.some((subject) => subject.endsWith('.rw.domain.state'))).toBe(true);
  });

  it('reports the node from /proc and /sys', async () => {
    const info = await client.call('alpha', 'node.info', {});
    expect(info.node).toBe('alpha');
    expect(info.cpu.count).toBeGreaterThan(0);
    expect(info.memory.totalBytes).toBeGreaterThan(0);
    expect(info.drivers.map((driver) => driver.name)).toContain('test');
  });

  it('runs a full lifecycle and publishes libvirt events in order', async () => {
    const domain = await client.call('alpha', 'domain.define', { name: 'web-1', driver: 'test', vcpus: 2, memory: 256 });
    expect(domain).toMatchObject({ name: 'web-1', node: 'alpha', state: 'shutoff', persistent: true });
    expect((await client.call('beta', 'domain.list', {})).domains).toEqual([]);

    const steps = [
      [{ action: 'start' }, 'running', 'booted'],
      [{ action: 'suspend' }, 'paused', 'user'],
      [{ action: 'resume' }, 'running', 'unpaused'],
      [{ action: 'shutdown', timeout: 5 }, 'shutoff', 'shutdown'],
      [{ action: 'start', paused: true }, 'paused', 'user'],
      [{ action: 'destroy' }, 'shutoff', 'destroyed'],
    ] as const;
    for (const [change, state, reason] of steps) {
      const after = await client.call('alpha', 'domain.state', { id: 'web-1', change });
      expect([after.state, after.reason]).toEqual([state, reason]);
    }
    await rejectsWith(client.call('alpha', 'domain.state', { id: 'web-1', change: { action: 'suspend' } }), 'OPERATION_INVALID');
    await client.call('alpha', 'domain.undefine', { id: domain.uuid });
    await rejectsWith(client.call('alpha', 'domain.get', { id: 'web-1' }), 'NO_DOMAIN');

    const events = await eventsFor(domain.uuid, 9);
    expect(events.map((event) => `${event.type}/${event.detail}`)).toEqual([
      'DEFINED/ADDED',
      'STARTED/BOOTED',
      'SUSPENDED/PAUSED',
      'RESUMED/UNPAUSED',
      'STOPPED/SHUTDOWN',
      'STARTED/BOOTED',
      'SUSPENDED/PAUSED',
      'STOPPED/DESTROYED',
      'UNDEFINED/REMOVED',
    ]);
    const seqs = events.map((event) => event.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(events.map((event) => event.node))).toEqual(new Set(['alpha']));
  });

  it('publishes TUNABLE with libvirt parameter names for live vCPU and blkdeviotune changes, not for setmem', async () => {
    const tunables: DomainEvent[] = [];
    const sub = bus.nc.subscribe(Subjects.eventKindFilter({ node: 'beta', kind: 'domainevent' }), { callback: (_error, message) => void tunables.push(message.json<DomainEvent>()) });
    const domain = await client.call('beta', 'domain.define', { name: 'tune', driver: 'test', vcpus: 1, cpu: { maxVcpus: 4 }, memory: 256, disks: [{ source: { path: '/images/tune.qcow2' }, target: 'vda' }] });
    await client.call('beta', 'domain.state', { id: 'tune', change: { action: 'start' } });
    await client.call('beta', 'domain.vcpus.set', { id: 'tune', set: { count: 3, live: true } });
    await client.call('beta', 'domain.memory.set', { id: 'tune', set: { memory: 128, live: true } });
    await client.call('beta', 'domain.block.iotune', { id: 'tune', target: 'vda', tune: { totalBytesSec: 1048576, readIopsSec: 100 } });
    const deadline = Date.now() + 30_000;
    while (tunables.filter((event) => event.uuid === domain.uuid && event.event === 'TUNABLE').length < 2 && Date.now() < deadline) await sleep(20);
    await client.call('beta', 'domain.state', { id: 'tune', change: { action: 'destroy' } });
    sub.unsubscribe();
    expect(tunables.filter((event) => event.uuid === domain.uuid && event.event === 'TUNABLE').map((event) => event.details)).toEqual([
      { params: { 'vcpu.current': 3 } },
      {
        device: 'vda',
        params: {
          'blkdeviotune.disk': 'vda',
          'blkdeviotune.total_bytes_sec': 1048576,
          'blkdeviotune.read_bytes_sec': 0,
          'blkdeviotune.write_bytes_sec': 0,
          'blkdeviotune.total_iops_sec': 0,
          'blkdeviotune.read_iops_sec': 100,
          'blkdeviotune.write_iops_sec': 0,
        },
      },
    ]);
  });

  it('serialises concurrent jobs on one domain', async () => {
    const domain = await client.call('beta', 'domain.define', { name: 'race', driver: 'test' });
    const [started, destroyed] = await Promise.allSettled([
      client.call('beta', 'domain.state', { id: 'race', change: { action: 'start' } }),
      client.call('beta', 'domain.state', { id: 'race', change: { action: 'destroy' } }),
    ]);
    // Arrival order decides: start runs first, destroy sees it running and stops it.
    expect(started.status).toBe('fulfilled');
    expect(destroyed.status).toBe('fulfilled');
    expect((await client.call('beta', 'domain.get', { id: domain.uuid })).state).toBe('shutoff');
    const events = await eventsFor(domain.uuid, 3);
    expect(events.map((event) => event.type)).toEqual(['DEFINED', 'STARTED', 'STOPPED']);
  });

  it('rejects bad input with INVALID_ARG and changes nothing', async () => {
    const before = await client.call('alpha', 'domain.list', {});
    const raw = async (subject: string, payload: string) => {
      const reply = await bus.nc.request(subject, payload, { timeout: 3000 });
      return reply.json<{ error?: { code: string; status: number } }>();
    };
    const define = Subjects.request('alpha', 'rw', 'domain.define');
    for (const payload of [
      '{not json',
      JSON.stringify({ name: 'x', driver: 'test', vcpus: 'two' }),
      JSON.stringify({ name: 'x', driver: 'test', sneaky: true }),
      JSON.stringify({ name: '../etc', driver: 'test' }),
      JSON.stringify({ name: 'a/b', driver: 'test' }),
      JSON.stringify({ name: 'bell\u0007', driver: 'test' }),
      JSON.stringify({ name: 'x', driver: 'xen' }),
      JSON.stringify({ name: 'x', driver: 'test', memory: 1e12 }),
      JSON.stringify({ name: 'x', driver: 'test', disks: [{ source: { path: '/var/lib/../../etc/shadow' } }] }),
      JSON.stringify({ name: 'x', driver: 'test', disks: [{ source: { path: '/tmp/a,file=/etc/passwd' } }] }),
      JSON.stringify({ name: 'x'.repeat(65), driver: 'test' }),
    ]) {
      const reply = await raw(define, payload);
      expect(reply.error, payload).toMatchObject({ code: 'INVALID_ARG', status: 400 });
    }
    const huge = JSON.stringify({ name: 'x', driver: 'test', os: { cmdline: 'a'.repeat(900_000) } });
    expect((await raw(define, huge)).error?.code).toBe('INVALID_ARG');
    expect(await client.call('alpha', 'domain.list', {})).toEqual(before);
  });

  it('refuses to start a second agent for a node that is already served', async () => {
    const duplicate = await spawnAgent({ node: 'alpha', natsUrl: bus.server.url, stateDir: join(work.path, 'alpha-2'), waitReady: false });
    expect(await duplicate.exited).not.toBe(0);
    expect(duplicate.output()).toMatch(/already served by a live agent/);
    expect((await client.call('alpha', 'node.info', {})).node).toBe('alpha');
  });

  it('keeps definitions, state and the event sequence across an agent restart', async () => {
    const domain = await client.call('alpha', 'domain.define', { name: 'survivor', driver: 'test' });
    const started = await client.call('alpha', 'domain.state', { id: 'survivor', change: { action: 'start' } });
    expect(started.id).toBeGreaterThanOrEqual(1);
    const lastSeq = Math.max(...(await eventsFor(domain.uuid, 2)).map((event) => event.seq));

    const old = agents.shift()!;
    await old.kill('SIGKILL');
    await rejectsWith(client.call('alpha', 'domain.list', {}, { timeoutMs: 1000 }), 'AGENT_UNREACHABLE');
    await rejectsWith(client.call('gamma', 'domain.list', {}, { timeoutMs: 1000 }), 'NO_NODE');
    agents.push(await spawnAgent({ node: 'alpha', natsUrl: bus.server.url, stateDir: join(work.path, 'alpha') }));

    const after = await client.call('alpha', 'domain.get', { id: 'survivor' });
    expect([after.uuid, after.state, after.reason]).toEqual([domain.uuid, 'running', 'booted']);
    // its virsh id too
    expect(after.id).toBe(started.id);
    await client.call('alpha', 'domain.state', { id: domain.uuid, change: { action: 'destroy' } });
    const events = await eventsFor(domain.uuid, 3);
    expect(events[2]).toMatchObject({ type: 'STOPPED', detail: 'DESTROYED', seq: lastSeq + 1 });
    // the next domain to start gets a new id, not one given before the restart
    await client.call('alpha', 'domain.define', { name: 'newcomer', driver: 'test' });
    const newcomer = await client.call('alpha', 'domain.state', { id: 'newcomer', change: { action: 'start' } });
    expect(newcomer.id).toBeGreaterThan(started.id!);
  });
});

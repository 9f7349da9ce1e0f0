import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DomainEventIds, sseMessages, Subjects, type Domain, type DomainEvent, type DomainEventName, type LifecycleEvent } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import {
  canMountTmpfs,
  ensureTestGuest,
  GuestShell,
  GUEST_MARKERS,
  nodeApi,
  hasBinaryOrSkip,
  spawnAgent,
  tearDown,
  useNatsBus,
  useTempDir,
  waitFor,
  type AgentProcess,
  type TestGuest,
} from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../src/index.js';

const QEMU = hasBinaryOrSkip('qemu-system-x86_64');
const GENISOIMAGE = hasBinaryOrSkip('genisoimage');
const NODE = 'evnode';

const bus = useNatsBus();
const dir = useTempDir('vb-events-');
let client: VirtClient;
let gateway: RunningGateway;
let agent: AgentProcess | undefined;
let guest: TestGuest;
let shell: GuestShell | undefined;
let fullDir: string | undefined;
const events: DomainEvent[] = [];
const lifecycle: LifecycleEvent[] = [];
const sse: { event?: string; data?: string }[] = [];
const sseAbort = new AbortController();

const { api, ok, defineFromImage } = nodeApi(() => gateway.url, NODE);

/** Waits for the domain event named `name` that `matches`, after `from` events were seen. */
async function nextEvent(name: DomainEventName, from: number, matches: (event: DomainEvent) => boolean = () => true, timeoutMs = 60_000): Promise<DomainEvent> {
  await waitFor(`a ${name} event`, () => events.slice(from).some((event) => event.event === name && matches(event)), timeoutMs);
  return events.slice(from).find((event) => event.event === name && matches(event))!;
}

describe.skipIf(!QEMU || !GENISOIMAGE)("domain events beyond the lifecycle, provoked on a TCG guest, with libvirt's names and ids", () => {
  let domain: Domain;

  beforeAll(async () => {
    guest = await ensureTestGuest();
    const nc = bus.nc;
    client = new VirtClient(nc);
    nc.subscribe(Subjects.eventKindFilter({ node: NODE, kind: 'domainevent' }), { callback: (_error, message) => void events.push(message.json<DomainEvent>()) });
    nc.subscribe(Subjects.domainEventFilter({ node: NODE }), { callback: (_error, message) => void lifecycle.push(message.json<LifecycleEvent>()) });
    agent = await spawnAgent({ node: NODE, natsUrl: bus.server.url, stateDir: join(dir.path, 'state'), drivers: 'test,qemu' });
    gateway = await startGateway({ nc, host: '127.0.0.1', port: 0, heartbeatMs: 500, discoveryWaitMs: 500 });
    const stream = await fetch(`${gateway.url}/v1/events?kind=domainevent&node=${NODE}`, { signal: sseAbort.signal });
    expect(stream.status).toBe(200);
    void (async () => {
      for await (const message of sseMessages(stream.body as AsyncIterable<Uint8Array>)) sse.push(message);
    })().catch(() => undefined);
  }, 300_000);

  afterAll(async () => {
    sseAbort.abort();
    await shell?.close();
    if (domain) await client.call(NODE, 'domain.state', { id: domain.uuid, change: { action: 'destroy' } }, { timeoutMs: 30_000 }).catch(() => undefined);
    if (fullDir) spawnSync('umount', [fullDir]);
    await tearDown(gateway, agent);
  }, 120_000);

  it('boots a provisioned guest (root volume + cidata cdrom)', async () => {
    domain = await defineFromImage('ev', guest);
    await ok<Domain>('PUT', '/domains/ev/state', { action: 'start' });
    shell = await GuestShell.open(client, bus.nc, NODE, 'ev');
    await waitFor('the guest shell', () => shell!.text().includes(GUEST_MARKERS.ready), 120_000);
  }, 180_000);

  it('METADATA_CHANGE when the labels change, numbered in the node sequence with the lifecycle events', async () => {
    const from = events.length;
    await ok<Domain>('PUT', '/domains/ev', { labels: { tier: 'web' } });
    const event = await nextEvent('METADATA_CHANGE', from);
    expect(event).toMatchObject({ kind: 'domain.event', node: NODE, uuid: domain.uuid, name: 'ev', eventId: 23, details: { metadata: 'labels' } });
    const updated = lifecycle.find((other) => other.type === 'DEFINED' && other.detail === 'UPDATED')!;
    expect(event.seq).toBe(updated.seq + 1);
  });

  it('DEVICE_ADDED and DEVICE_REMOVED around a disk hotplug and unplug', async () => {
    await ok('POST', '/storage-pools/default/volumes', { name: 'data.raw', format: 'raw', capacity: '8M' }, 201);
    let from = events.length;
    await ok<Domain>('POST', '/domains/ev/disks', { disk: { source: { pool: 'default', volume: 'data.raw' } }, live: true });
    expect((await nextEvent('DEVICE_ADDED', from)).details).toEqual({ device: 'vdb' });
    await shell!.until('cat /sys/block/vdb/size 2>/dev/null || echo none', (output) => output !== 'none');
    from = events.length;
    await ok<Domain>('DELETE', '/domains/ev/disks/vdb?live=true');
    expect(await nextEvent('DEVICE_REMOVED', from)).toMatchObject({ eventId: DomainEventIds.DEVICE_REMOVED, details: { device: 'vdb' } });
  }, 90_000);

  it('TRAY_CHANGE (QMP DEVICE_TRAY_MOVED) and DISK_CHANGE when the cdrom is ejected', async () => {
    const from = events.length;
    await ok<Domain>('PUT', '/domains/ev/disks/hda/media', { live: true });
    expect(await nextEvent('TRAY_CHANGE', from)).toMatchObject({ eventId: 10, details: { device: 'hda', reason: 'OPEN' } });
    expect(await nextEvent('DISK_CHANGE', from)).toMatchObject({ eventId: 9, details: { device: 'hda', reason: 'MEDIA_EJECTED', oldSource: 'default/ev-cidata.iso' } });
  });

  it('RTC_CHANGE when the guest sets its hardware clock', async (context) => {
    const hwclock = await shell!.run('[ -e /dev/rtc0 ] && command -v hwclock >/dev/null && echo yes || echo no');
    if (hwclock !== 'yes') return context.skip('the test guest has no /dev/rtc0 or no hwclock applet');
    const from = events.length;
    await shell!.run('date -s "2030-01-01 00:00:00" >/dev/null; hwclock -w -u');
    const event = await nextEvent('RTC_CHANGE', from);
    expect(event.eventId).toBe(2);
    expect(event.details.offset).toBeGreaterThan(365 * 24 * 3600);
  });

  it('QMP passthrough answers as QEMU does and marks the domain tainted; other drivers refuse it', async () => {
    const status = await ok<{ return: { status: string; running: boolean } }>('POST', '/domains/ev/qemu/monitor-command', { command: 'query-status' });
    expect(status.return).toMatchObject({ status: 'running', running: true });
    const hmp = await ok<{ return: string }>('POST', '/domains/ev/qemu/monitor-command', { command: 'info status', hmp: true });
    expect(hmp.return).toContain('running');
    const failing = await api('POST', '/domains/ev/qemu/monitor-command', { command: 'no-such-command' });
    expect(failing.body?.code).toBe('OPERATION_FAILED');
    expect((await ok<Domain>('GET', '/domains/ev')).tainted).toEqual(['custom-monitor']);

    await ok('POST', '/domains', { name: 'plain', driver: 'test', memory: 64 }, 201);
    await ok('PUT', '/domains/plain/state', { action: 'start' });
    for (const [path, body] of [
      ['/domains/plain/qemu/monitor-command', { command: 'query-status' }],
      ['/domains/plain/lxc/enter-namespace', { command: ['true'] }],
      ['/domains/ev/lxc/enter-namespace', { command: ['true'] }],
    ] as const) {
      const refused = await api('POST', path, body);
      expect(refused.body?.code, path).toBe('OPERATION_UNSUPPORTED');
    }
    expect((await ok<Domain>('GET', '/domains/plain')).tainted).toBeUndefined();
  });

  it('REBOOT when the guest is reset', async () => {
    const from = events.length;
    await ok<Domain>('PUT', '/domains/ev/state', { action: 'reset' });
    expect(await nextEvent('REBOOT', from)).toMatchObject({ eventId: 1, details: {} });
    await waitFor('the guest shell after the reset', () => shell!.text().split(GUEST_MARKERS.ready).length > 2, 120_000);
  }, 150_000);

  it('IO_ERROR and IO_ERROR_REASON (enospc) when the guest writes to a disk whose file system is full; the domain pauses', async (context) => {
    if (!canMountTmpfs()) return context.skip('cannot mount a tmpfs here');
    fullDir = join(dir.path, 'full');
    await mkdir(fullDir);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', fullDir]);
    const image = join(fullDir, 'grow.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', image, '16M']);
    await ok<Domain>('POST', '/domains/ev/disks', { disk: { source: { path: image }, format: 'qcow2', target: 'vdc' }, live: true });
    // the guest names disks in the order it finds them: the 16 MiB one (32768 sectors) is this disk
    const inGuest = await shell!.until('for d in /sys/block/vd*; do [ "$(cat $d/size)" = 32768 ] && basename $d; done; echo .', (output) => output !== '.');
    const from = events.length;
    await shell!.type(`dd if=/dev/urandom of=/dev/${inGuest.replace(/\s*\.$/, '')} bs=64k count=128 oflag=direct`);
    expect(await nextEvent('IO_ERROR', from)).toMatchObject({ eventId: 4, details: { device: 'vdc', action: 'stop' } });
    expect(await nextEvent('IO_ERROR_REASON', from)).toMatchObject({ eventId: 6, details: { device: 'vdc', action: 'stop', reason: 'enospc' } });
    await waitFor('the domain paused on the I/O error', () => lifecycle.some((event) => event.type === 'SUSPENDED' && event.detail === 'IOERROR'), 30_000);
  }, 120_000);

  it('delivers them on GET /v1/events?kind=domainevent as `domain.event` messages', async () => {
    await waitFor('the SSE stream to catch up', () => sse.filter((message) => message.event === 'domain.event').length >= events.length, 30_000);
    const streamed = sse.filter((message) => message.event === 'domain.event').map((message) => JSON.parse(message.data!) as DomainEvent);
    expect(streamed.map((event) => event.event)).toEqual(events.map((event) => event.event));
    for (const name of ['METADATA_CHANGE', 'DEVICE_ADDED', 'DEVICE_REMOVED', 'TRAY_CHANGE', 'DISK_CHANGE', 'REBOOT'] as const) expect(streamed.map((event) => event.event)).toContain(name);
  });
});

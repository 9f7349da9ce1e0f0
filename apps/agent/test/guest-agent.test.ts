import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Subjects, type Domain, type DomainEvent } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import {
  ensureBusyboxRootfs,
  ensureTestGuest,
  GUEST_FLAGS,
  GUEST_MARKERS,
  hasBinaryOrSkip,
  rejectsWith,
  spawnAgent,
  tearDown,
  useNatsBus,
  useTempDir,
  waitFor,
  type AgentProcess,
} from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const NODE = 'qga';
const QEMU = hasBinaryOrSkip('qemu-system-x86_64');
const LXC = hasBinaryOrSkip('lxc-start');
const bus = useNatsBus();
const workDir = useTempDir('virtbus-guest-agent-');
let client: VirtClient;
let agent: AgentProcess;
const events: DomainEvent[] = [];

beforeAll(async () => {
  client = new VirtClient(bus.nc);
  bus.nc.subscribe(Subjects.eventKindFilter({ node: NODE, kind: 'domainevent' }), { callback: (_error, message) => void events.push(message.json<DomainEvent>()) });
  agent = await spawnAgent({ node: NODE, natsUrl: bus.server.url, stateDir: join(workDir.path, 'state'), drivers: 'test,qemu,lxc', env: { VIRTBUS_METRICS_ADDRESS: 'off' } });
});

afterAll(() => tearDown(agent));

describe('guest agent calls on the test driver', () => {
  it('answers like a small Linux guest, keeps frozen file systems and the clock, and refuses unless running', async () => {
    const domain = await client.call(NODE, 'domain.define', { name: 'tqga', driver: 'test', nics: [{ type: 'user' }], disks: [{ source: { path: '/var/lib/virtbus/tqga.qcow2' } }] });
    const id = domain.uuid;
    await rejectsWith(client.call(NODE, 'domain.agent.ping', { id }), 'OPERATION_INVALID');
    await client.call(NODE, 'domain.state', { id, change: { action: 'start' } });
    expect(await client.call(NODE, 'domain.agent.ping', { id })).toEqual({});
    expect(await client.call(NODE, 'domain.agent.info', { id })).toMatchObject({ hostname: 'tqga', os: { id: 'virtbus-test' } });
    const { interfaces } = await client.call(NODE, 'domain.interface.addresses', { id, source: 'agent' });
    expect(interfaces.map((nic) => nic.name)).toEqual(['lo', 'eth0']);
    expect(await client.call(NODE, 'domain.fs.freeze', { id })).toEqual({ filesystems: 2 });
    await rejectsWith(client.call(NODE, 'domain.fs.freeze', { id }), 'OPERATION_INVALID');
    // a quiesced snapshot freezes too: refused while frozen, then taken and thawed
    await rejectsWith(client.call(NODE, 'domain.snapshot.create', { id, snapshot: { name: 'q0', quiesce: true } }), 'OPERATION_INVALID');
    expect(await client.call(NODE, 'domain.fs.thaw', { id })).toEqual({ filesystems: 2 });
    expect((await client.call(NODE, 'domain.snapshot.create', { id, snapshot: { name: 'q1', quiesce: true } })).name).toBe('q1');
    expect(await client.call(NODE, 'domain.fs.thaw', { id })).toEqual({ filesystems: 0 });
    await client.call(NODE, 'domain.user.password', { id, user: 'alice', password: 'secret' });
    expect((await client.call(NODE, 'domain.agent.info', { id })).users.map((user) => user.name)).toEqual(['alice']);
    expect((await client.call(NODE, 'domain.time.set', { id, seconds: 2_000_000_000 })).seconds).toBeGreaterThanOrEqual(2_000_000_000);
    expect((await client.call(NODE, 'domain.time.get', { id })).seconds).toBeGreaterThanOrEqual(2_000_000_000);
    const synced = await client.call(NODE, 'domain.time.set', { id, sync: true });
    expect(Math.abs(synced.seconds - Date.now() / 1000)).toBeLessThan(60);
    await rejectsWith(client.call(NODE, 'domain.time.set', { id, sync: true, seconds: 1 }), 'INVALID_ARG');
    await client.call(NODE, 'domain.state', { id, change: { action: 'suspend' } });
    await rejectsWith(client.call(NODE, 'domain.agent.ping', { id }), 'OPERATION_INVALID');
    await client.call(NODE, 'domain.state', { id, change: { action: 'destroy' } });
    await client.call(NODE, 'domain.undefine', { id });
  });

  it.skipIf(!LXC)('answers OPERATION_UNSUPPORTED for lxc domains', async () => {
    const rootfs = await ensureBusyboxRootfs();
    const domain = await client.call(NODE, 'domain.define', { name: 'lqga', driver: 'lxc', container: { rootfs: { path: rootfs } } });
    await rejectsWith(client.call(NODE, 'domain.agent.ping', { id: domain.uuid }), 'OPERATION_UNSUPPORTED');
    await rejectsWith(client.call(NODE, 'domain.fs.freeze', { id: domain.uuid }), 'OPERATION_UNSUPPORTED');
    await rejectsWith(client.call(NODE, 'domain.snapshot.create', { id: domain.uuid, snapshot: { quiesce: true } }), 'OPERATION_UNSUPPORTED');
    await client.call(NODE, 'domain.undefine', { id: domain.uuid });
  });
});

describe.skipIf(!QEMU)('guest agent calls on QEMU (TCG guest running qemu-ga from the Debian package)', () => {
  let domain: Domain;
  const id = () => domain.uuid;
  const log = () => readFile(join(workDir.path, 'state', 'drivers', 'qemu', id(), 'console.log'), 'utf8').catch(() => '');

  beforeAll(async () => {
    const guest = await ensureTestGuest();
    // an ext4 data disk the guest mounts: something to freeze
    const raw = join(workDir.path, 'data.raw');
    const disk = join(workDir.path, 'data.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', raw, '32M']);
    execFileSync('mkfs.ext4', ['-q', '-F', raw]);
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, disk]);
    domain = await client.call(NODE, 'domain.define', {
      name: 'qqga',
      driver: 'qemu',
      memory: 256,
      os: { kernel: guest.kernel, initrd: guest.agentInitrd, cmdline: `${guest.cmdline} ${GUEST_FLAGS.dhcp}` },
      nics: [{ type: 'user' }],
      disks: [{ source: { path: disk }, format: 'qcow2' }],
    });
    await client.call(NODE, 'domain.state', { id: id(), change: { action: 'start' } });
    await waitFor('qemu-ga in the guest', async () => (await log()).includes(GUEST_MARKERS.guestAgent), 120_000, async () => `console tail: ${(await log()).slice(-400)}`);
    const mounted = await client.call(NODE, 'domain.exec', { id: id(), exec: { command: ['/bin/sh', '-c', 'mkdir -p /mnt && mount /dev/vda /mnt && echo data >/mnt/file'] } });
    expect(mounted).toMatchObject({ exitCode: 0 });
  }, 240_000);

  afterAll(async () => {
    await client.call(NODE, 'domain.state', { id: id(), change: { action: 'destroy' } }).catch(() => undefined);
  });

  it('pings, reports the OS, host name and users, and the interfaces with their addresses', async () => {
    const guest = await ensureTestGuest();
    // qemu-ga opened its channel: libvirt's AGENT_LIFECYCLE connected
    await waitFor('AGENT_LIFECYCLE CONNECTED', () => events.some((event) => event.uuid === id() && event.event === 'AGENT_LIFECYCLE' && event.details.state === 'CONNECTED'), 30_000);
    expect(await client.call(NODE, 'domain.agent.ping', { id: id() })).toEqual({});
    const info = await client.call(NODE, 'domain.agent.info', { id: id() });
    console.info(`guest info: ${JSON.stringify(info)}`);
    expect(info.os).toMatchObject({ id: 'virtbus-test-guest', kernelRelease: guest.kernelRelease, machine: 'x86_64' });
    expect(info.users).toEqual([]);
    await waitFor('the DHCP lease', async () => (await log()).includes(GUEST_MARKERS.ip), 60_000);
    const { interfaces } = await client.call(NODE, 'domain.interface.addresses', { id: id() });
    const eth0 = interfaces.find((nic) => nic.name === 'eth0');
    expect(eth0?.hwaddr).toMatch(/^52:54:00:/);
    expect(eth0?.addresses).toContainEqual({ type: 'ipv4', address: '10.0.2.15', prefix: 24 });
    expect(interfaces.find((nic) => nic.name === 'lo')?.addresses).toContainEqual({ type: 'ipv4', address: '127.0.0.1', prefix: 8 });
  });

  it("fills a user NIC's interface stats from the guest agent's counters (host view, as for taps: rx = what the guest sent)", async () => {
    await waitFor('the DHCP lease', async () => (await log()).includes(GUEST_MARKERS.ip), 60_000);
    const nic0 = (await client.call(NODE, 'domain.stats', { id: id() })).net?.find((nic) => nic.name === 'nic0');
    // the guest sent DHCP discover/request and received the offer/ack of QEMU's slirp
    expect(nic0?.rxPackets).toBeGreaterThan(0);
    expect(nic0?.txPackets).toBeGreaterThan(0);
    expect(nic0?.rxBytes).toBeGreaterThan(0);
  });

  it('runs a command with its output and exit code (guest-exec)', async () => {
    const result = await client.call(NODE, 'domain.exec', { id: id(), exec: { command: ['/bin/sh', '-c', 'echo "hi $WHO"; echo err >&2; exit 3'], env: { WHO: 'there' } } });
    expect(result).toEqual({ exitCode: 3, stdout: 'hi there\n', stderr: 'err\n', timedOut: false });
  });

  it('sets a user password, freezes and thaws the file systems, and sets and syncs the clock', async () => {
    await client.call(NODE, 'domain.user.password', { id: id(), user: 'root', password: 'correct horse' });
    const shadow = await client.call(NODE, 'domain.exec', { id: id(), exec: { command: ['grep', '^root:', '/etc/shadow'] } });
    expect(shadow.stdout).toMatch(/^root:\$6\$/);
    await rejectsWith(client.call(NODE, 'domain.user.password', { id: id(), user: 'nobody-here', password: 'x' }), 'OPERATION_FAILED');

    expect(await client.call(NODE, 'domain.fs.freeze', { id: id() })).toEqual({ filesystems: 1 });
    expect(await client.call(NODE, 'domain.fs.thaw', { id: id() })).toEqual({ filesystems: 1 });
    expect(await client.call(NODE, 'domain.fs.freeze', { id: id(), mountpoints: ['/mnt'] })).toEqual({ filesystems: 1 });
    expect(await client.call(NODE, 'domain.fs.thaw', { id: id() })).toEqual({ filesystems: 1 });

    const set = await client.call(NODE, 'domain.time.set', { id: id(), seconds: 2_000_000_000 });
    expect(set.seconds).toBeGreaterThanOrEqual(2_000_000_000);
    expect(set.seconds).toBeLessThan(2_000_000_000 + 60);
    const date = await client.call(NODE, 'domain.exec', { id: id(), exec: { command: ['date', '+%s'] } });
    expect(Number(date.stdout.trim())).toBeGreaterThanOrEqual(2_000_000_000);
    const synced = await client.call(NODE, 'domain.time.set', { id: id(), sync: true });
    expect(Math.abs(synced.seconds - Date.now() / 1000)).toBeLessThan(60);
    expect(Math.abs((await client.call(NODE, 'domain.time.get', { id: id() })).seconds - Date.now() / 1000)).toBeLessThan(60);
  });

  it('takes a quiesced snapshot (frozen around it, thawed after: the guest writes to the disk again)', async () => {
    const snapshot = await client.call(NODE, 'domain.snapshot.create', { id: id(), snapshot: { name: 'quiet', quiesce: true } });
    expect(snapshot.name).toBe('quiet');
    const written = await client.call(NODE, 'domain.exec', { id: id(), exec: { command: ['/bin/sh', '-c', 'echo more >>/mnt/file && cat /mnt/file'], timeout: 20 } });
    expect(written).toEqual({ exitCode: 0, stdout: 'data\nmore\n', stderr: '', timedOut: false });
  });

  it('refuses while paused, and answers GUEST_AGENT_UNRESPONSIVE while qemu-ga is stopped in the guest', async () => {
    await client.call(NODE, 'domain.state', { id: id(), change: { action: 'suspend' } });
    await rejectsWith(client.call(NODE, 'domain.agent.ping', { id: id() }), 'OPERATION_INVALID');
    await client.call(NODE, 'domain.state', { id: id(), change: { action: 'resume' } });
    expect(await client.call(NODE, 'domain.agent.ping', { id: id() })).toEqual({});

    // qemu-ga stops itself a second after answering; the console starts it again
    await client.call(NODE, 'domain.exec', { id: id(), exec: { command: ['/bin/sh', '-c', '(sleep 1; kill -STOP $(cat /var/run/qemu-ga.pid)) </dev/null >/dev/null 2>&1 &'] } });
    await waitFor('qemu-ga stopped', async () => {
      const outcome = await client.call(NODE, 'domain.agent.ping', { id: id() }).then(() => 'answered', (error: { code?: string }) => error.code);
      return outcome === 'GUEST_AGENT_UNRESPONSIVE';
    }, 60_000);
    const { session } = await client.call(NODE, 'domain.console.attach', { id: id(), force: true });
    await client.call(NODE, 'domain.console.write', { id: id(), session, data: Buffer.from('kill -CONT $(cat /var/run/qemu-ga.pid)\n').toString('base64') });
    await client.call(NODE, 'domain.console.detach', { id: id(), session });
    await waitFor('qemu-ga answering again', () => client.call(NODE, 'domain.agent.ping', { id: id() }).then(() => true, () => false), 60_000);
  });
});

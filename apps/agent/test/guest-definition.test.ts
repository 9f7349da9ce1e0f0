import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { Subjects, type DomainEvent } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { type AgentProcess, ensureTestGuest, GUEST_MARKERS, hasBinaryOrSkip, type NatsServerHandle, rejectsWith, spawnAgent, startNatsServer, tearDown, type TestGuest, waitFor } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const NODE = 'gdef';
const QEMU = hasBinaryOrSkip('qemu-system-x86_64');
let guest: TestGuest;
let client: VirtClient;
let workDir = '';
let agent: AgentProcess;
let nc: NatsConnection;
let nats: NatsServerHandle;
const stateDir = () => join(workDir, 's');
const nvramOf = (uuid: string) => join(stateDir(), 'nvram', `${uuid}_VARS.fd`);
const tpmStateOf = (uuid: string) => join(stateDir(), 'tpm', uuid);

/** Types a shell line on the guest's serial console. */
async function typeLine(id: string, line: string): Promise<void> {
  const { session } = await client.call(NODE, 'domain.console.attach', { id, force: true });
  await client.call(NODE, 'domain.console.write', { id, session, data: Buffer.from(`${line}\n`).toString('base64') });
  await client.call(NODE, 'domain.console.detach', { id, session });
}

/** Runs `command` in the guest until its output, printed as `TAG=<value>;`, passes `accept`; returns that value. */
async function guestValue(id: string, tag: string, command: string, accept: (value: string) => boolean): Promise<string> {
  const pattern = new RegExp(`${tag}=([^;\\s]*);`, 'g');
  return waitFor(`${tag} from the guest`, async () => {
    await typeLine(id, `echo "${tag}=$(${command});"`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const values = [...(await consoleText(id)).matchAll(pattern)].map((match) => match[1]!);
    const last = values.at(-1);
    return last !== undefined && accept(last) ? last : undefined;
  }, 60_000);
}

/** This node's domain events as they arrive (a plain subscription). */
function collectDomainEvents(): { events: DomainEvent[]; sub: Subscription } {
  const events: DomainEvent[] = [];
  const sub = nc.subscribe(Subjects.eventKindFilter({ node: NODE, kind: 'domainevent' }), { callback: (_error, message) => void events.push(message.json<DomainEvent>()) });
  return { events, sub };
}

/** What the serial console printed so far. */
async function consoleText(id: string): Promise<string> {
  return Buffer.from((await client.call(NODE, 'domain.console.read', { id })).history, 'base64').toString('utf8');
}

beforeAll(async () => {
  nats = await startNatsServer();
  // short: QMP and console sockets live below it (unix socket paths are limited to 107 bytes)
  workDir = await mkdtemp('/tmp/vbg-');
  nc = await connect({ servers: nats.url });
  client = new VirtClient(nc);
  agent = await spawnAgent({ node: NODE, natsUrl: nats.url, stateDir: stateDir(), drivers: 'test,qemu,lxc', env: { VIRTBUS_METRICS_ADDRESS: 'off' } });
}, 120_000);

afterAll(async () => {
  const listed = client ? await client.call(NODE, 'domain.list', {}).catch(() => undefined) : undefined;
  for (const domain of listed?.domains.filter((d) => d.state !== 'shutoff') ?? []) await client.call(NODE, 'domain.state', { id: domain.uuid, change: { action: 'destroy' } }).catch(() => undefined);
  await tearDown(agent, nc, nats, workDir);
}, 60_000);

describe('definition fields on the test and lxc drivers', () => {
  it('the test driver keeps firmware, CPU, balloon and NUMA settings under the QEMU rules', async () => {
    const numa = [0, 1].map((cell) => ({ cpus: `${cell * 2}-${cell * 2 + 1}`, memory: 256 }));
    const machine = { os: { firmware: 'efi', machine: 'q35', secureBoot: true }, cpu: { model: 'max', sockets: 2, cores: 2 }, numa } as const;
    const domain = await client.call(NODE, 'domain.define', { name: 'tdef', driver: 'test', vcpus: 2, memory: 512, currentMemory: 384, ...machine });
    expect(domain.config).toMatchObject({ currentMemory: 384, cpu: { sockets: 2, cores: 2 }, os: { firmware: 'efi', secureBoot: true } });
    await rejectsWith(client.call(NODE, 'domain.define', { name: 'tbad', driver: 'test', memory: 512, numa: [{ cpus: '0', memory: 100 }] }), 'INVALID_ARG');
    await rejectsWith(client.call(NODE, 'domain.define', { name: 'tbad', driver: 'test', vcpus: 4, cpu: { maxVcpus: 2 } }), 'INVALID_ARG');
    await client.call(NODE, 'domain.undefine', { id: 'tdef' });
  });

  it('an lxc domain refuses VM-only fields with OPERATION_UNSUPPORTED', async () => {
    await rejectsWith(
      client.call(NODE, 'domain.define', { name: 'cdef', driver: 'lxc', container: { rootfs: { path: '/nonexistent' } }, os: { firmware: 'efi' } }),
      'OPERATION_UNSUPPORTED',
    );
  });
});

describe.skipIf(!QEMU)('UEFI firmware, live vCPUs and balloon on the qemu driver (TCG)', () => {
  beforeAll(async () => {
    guest = await ensureTestGuest();
  }, 300_000);

  it('OVMF with secure boot loads the guest kernel (fw_cfg into its EFI stub), which sees secure boot, two NUMA cells and a TPM that outlives an agent restart; NVRAM and TPM state live until undefine', async () => {
    const domain = await client.call(NODE, 'domain.define', {
      name: 'efi',
      driver: 'qemu',
      vcpus: 1,
      memory: 256,
      // node1's vCPU is a hotplug slot: the guest gets its memory without a second vCPU to emulate
      cpu: { maxVcpus: 2 },
      numa: [{ cpus: '0', memory: 128 }, { cpus: '1', memory: 128 }],
      devices: { tpm: { model: 'tpm-crb' } },
      // ignore_loglevel: the kernel's "efi: EFI v… by EDK II" line shows through the guest's quiet flag
      os: { firmware: 'efi', machine: 'q35', secureBoot: true, kernel: guest.kernel, initrd: guest.initrd, cmdline: `${guest.cmdline} ignore_loglevel` },
    });
    expect(existsSync(nvramOf(domain.uuid))).toBe(false);
    await client.call(NODE, 'domain.state', { id: 'efi', change: { action: 'start' } });
    expect(existsSync(nvramOf(domain.uuid))).toBe(true);
    const text = await waitFor('GUEST-READY after OVMF', async () => ((await consoleText('efi')).includes(GUEST_MARKERS.ready) ? consoleText('efi') : undefined), 200_000);
    // the kernel, entered through its EFI stub, names the firmware that loaded it and reads its SecureBoot variable
    expect(text).toContain('Linux version');
    expect(text).toMatch(/efi: EFI v[\d.]+ by EDK II/);
    expect(text).toContain('secureboot: Secure boot enabled');
    expect(text).toContain('Kernel is locked down from EFI Secure Boot');
    // one console round trip: NUMA nodes, node1's memory, the TPM the guest's tpm_crb driver found and its PCR 0 (a command swtpm answers)
    const pcrOf = 'cat /sys/class/tpm/tpm0/pcr-sha256/0';
    const facts = await guestValue('efi', 'HW', `echo $(ls -d /sys/devices/system/node/node[0-9]* | wc -l),$(awk '/MemTotal/{print $4}' /sys/devices/system/node/node1/meminfo),$(cat /sys/class/tpm/tpm0/tpm_version_major),$(${pcrOf})`, (value) => value.split(',').length === 4);
    const [nodes, node1KiB, tpmMajor, measured] = facts.split(',') as [string, string, string, string];
    expect(nodes).toBe('2');
    expect(Number(node1KiB)).toBeGreaterThan(64 * 1024);
    expect(Number(node1KiB)).toBeLessThanOrEqual(128 * 1024);
    expect(tpmMajor).toBe('2');
    expect(measured).toMatch(/^[0-9A-F]{64}$/i);
    const swtpm = JSON.parse(readFileSync(join(stateDir(), 'drivers', 'qemu', domain.uuid, 'swtpm.json'), 'utf8')) as { pid: number };
    const alive = (pid: number) => existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
    expect(alive(swtpm.pid)).toBe(true);
    expect(readdirSync(tpmStateOf(domain.uuid))).toContain('tpm2-00.permall');

    // the agent dies and comes back: it adopts QEMU, whose swtpm kept running
    await agent.kill('SIGKILL');
    agent = await spawnAgent({ node: NODE, natsUrl: nats.url, stateDir: stateDir(), drivers: 'test,qemu,lxc', env: { VIRTBUS_METRICS_ADDRESS: 'off' } });
    expect((await client.call(NODE, 'domain.get', { id: 'efi' })).state).toBe('running');
    expect(await guestValue('efi', 'PCRB', pcrOf, (value) => /^[0-9A-F]{64}$/i.test(value))).toBe(measured);

    await client.call(NODE, 'domain.state', { id: 'efi', change: { action: 'destroy' } });
    expect(existsSync(nvramOf(domain.uuid))).toBe(true);
    await waitFor('swtpm ended with its QEMU', () => !alive(swtpm.pid), 15_000);
    expect(existsSync(tpmStateOf(domain.uuid))).toBe(true);
    await client.call(NODE, 'domain.undefine', { id: 'efi' });
    expect(existsSync(nvramOf(domain.uuid))).toBe(false);
    expect(existsSync(tpmStateOf(domain.uuid))).toBe(false);
  }, 300_000);

  it('undefine keeps the NVRAM when asked (keepNvram)', async () => {
    const domain = await client.call(NODE, 'domain.define', { name: 'efikeep', driver: 'qemu', vcpus: 1, memory: 64, os: { firmware: 'efi' } });
    await client.call(NODE, 'domain.state', { id: 'efikeep', change: { action: 'start', paused: true } });
    await client.call(NODE, 'domain.state', { id: 'efikeep', change: { action: 'destroy' } });
    await client.call(NODE, 'domain.undefine', { id: 'efikeep', keepNvram: true });
    expect(existsSync(nvramOf(domain.uuid))).toBe(true);
  }, 120_000);

  it('backs guest memory with huge pages the test reserves, and refuses to start when too few are free', async (context) => {
    const NR = '/proc/sys/vm/nr_hugepages';
    const meminfo = () => Object.fromEntries([...readFileSync('/proc/meminfo', 'utf8').matchAll(/^(HugePages_\w+|Hugepagesize):\s+(\d+)/gm)].map((match) => [match[1]!, Number(match[2])]));
    const available = () => meminfo().HugePages_Free! - meminfo().HugePages_Rsvd!;
    const pageKiB = meminfo().Hugepagesize ?? 0;
    const needed = pageKiB > 0 ? (64 * 1024) / pageKiB : 0;
    let previous: string | undefined;
    try {
      previous = readFileSync(NR, 'utf8');
      if (needed > 0) writeFileSync(NR, String(Number(previous) + needed));
    } catch (error) {
      return context.skip(`cannot reserve huge pages in ${NR}: ${(error as Error).message}`);
    }
    try {
      if (!Number.isInteger(needed) || needed === 0 || available() < needed) return context.skip(`the host could not reserve ${needed} huge pages of ${pageKiB} kB`);
      await client.call(NODE, 'domain.define', { name: 'huge', driver: 'qemu', vcpus: 1, memory: 64, memoryBacking: { hugepages: true } });
      const before = available();
      await client.call(NODE, 'domain.state', { id: 'huge', change: { action: 'start', paused: true } });
      // QEMU's hugetlb mapping reserves its pages at start
      expect(before - available()).toBe(needed);
      const over = Math.ceil(((available() + 1) * pageKiB) / 1024);
      await client.call(NODE, 'domain.define', { name: 'huge2', driver: 'qemu', vcpus: 1, memory: over, memoryBacking: { hugepages: true } });
      const refused = await rejectsWith(client.call(NODE, 'domain.state', { id: 'huge2', change: { action: 'start', paused: true } }), 'OPERATION_FAILED');
      expect(refused.message).toMatch(/huge pages/);
      await client.call(NODE, 'domain.state', { id: 'huge', change: { action: 'destroy' } });
      // the kernel frees the pages once QEMU's exit completes
      await waitFor('huge pages released', () => available() === before, 15_000);
    } finally {
      await client.call(NODE, 'domain.state', { id: 'huge', change: { action: 'destroy' } }).catch(() => undefined);
      writeFileSync(NR, previous);
    }
  }, 120_000);

  it('refuses host CPU models on a TCG domain and secure boot without q35', async () => {
    await rejectsWith(client.call(NODE, 'domain.define', { name: 'hm', driver: 'qemu', cpu: { model: 'host-model' } }), 'OPERATION_UNSUPPORTED');
    await rejectsWith(client.call(NODE, 'domain.define', { name: 'sb', driver: 'qemu', os: { firmware: 'efi', secureBoot: true } }), 'INVALID_ARG');
  });

  it('hotplugs and unplugs a vCPU and moves the balloon (BALLOON_CHANGE); the guest sees both; --config changes only the definition; the watchdog fires (WATCHDOG)', async () => {
    const { events, sub } = collectDomainEvents();
    await client.call(NODE, 'domain.define', {
      name: 'live',
      driver: 'qemu',
      vcpus: 1,
      memory: 512,
      cpu: { maxVcpus: 2 },
      // QEMU takes these devices and the guest boots with them
      devices: { rng: { model: 'virtio' }, watchdog: { model: 'i6300esb', action: 'pause' }, usb: { model: 'qemu-xhci' }, inputs: [{ type: 'tablet' }, { type: 'keyboard', bus: 'virtio' }] },
      os: { kernel: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline },
    });
    await client.call(NODE, 'domain.state', { id: 'live', change: { action: 'start' } });
    await waitFor('GUEST-READY', async () => (await consoleText('live')).includes(GUEST_MARKERS.ready), 200_000);
    expect(await guestValue('live', 'CPUS', 'cat /sys/devices/system/cpu/online', () => true)).toBe('0');

    let domain = await client.call(NODE, 'domain.vcpus.set', { id: 'live', set: { count: 2 } });
    expect(domain.config.vcpus).toBe(1);
    expect((await client.call(NODE, 'domain.stats', { id: 'live' })).vcpu?.current).toBe(2);
    // the busybox guest has no udev rule that onlines a new CPU: do what such a rule does
    await typeLine('live', 'echo 1 > /sys/devices/system/cpu/cpu1/online');
    expect(await guestValue('live', 'CPUS', 'cat /sys/devices/system/cpu/online', (value) => value === '0-1')).toBe('0-1');
    await rejectsWith(client.call(NODE, 'domain.vcpus.set', { id: 'live', set: { count: 3 } }), 'INVALID_ARG');

    // the guest's kernel offlines and ejects the vCPU on QEMU's ACPI request
    domain = await client.call(NODE, 'domain.vcpus.set', { id: 'live', set: { count: 1, timeout: 60 } }, { timeoutMs: 65_000 });
    expect((await client.call(NODE, 'domain.stats', { id: 'live' })).vcpu?.current).toBe(1);
    expect(await guestValue('live', 'CPUS', 'cat /sys/devices/system/cpu/online', (value) => value === '0')).toBe('0');

    const before = Number(await guestValue('live', 'MEMKB', "awk '/MemTotal/{print $2}' /proc/meminfo", (value) => Number(value) > 0));
    domain = await client.call(NODE, 'domain.memory.set', { id: 'live', set: { memory: 256 } });
    expect(domain.config.currentMemory).toBeUndefined();
    // the balloon takes 256 MiB away from the guest's total
    const after = Number(await guestValue('live', 'MEMKB', "awk '/MemTotal/{print $2}' /proc/meminfo", (value) => Number(value) <= before - 200 * 1024));
    expect(before - after).toBeGreaterThanOrEqual(200 * 1024);
    await waitFor('query-balloon at 256 MiB', async () => (await client.call(NODE, 'domain.stats', { id: 'live' })).memory?.currentBytes === 256 * 1024 * 1024, 30_000);
    await rejectsWith(client.call(NODE, 'domain.memory.set', { id: 'live', set: { memory: 1024 } }), 'INVALID_ARG');
    await waitFor('BALLOON_CHANGE at 256 MiB', () => events.some((event) => event.event === 'BALLOON_CHANGE' && event.details.actualKiB === 256 * 1024), 30_000);

    domain = await client.call(NODE, 'domain.vcpus.set', { id: 'live', set: { count: 2, config: true } });
    expect(domain.config.vcpus).toBe(2);
    expect((await client.call(NODE, 'domain.stats', { id: 'live' })).vcpu?.current).toBe(1);
    domain = await client.call(NODE, 'domain.memory.set', { id: 'live', set: { memory: 384, config: true } });
    expect(domain.config.currentMemory).toBe(384);

    // the guest kernel has no i6300esb driver: do what it does, 1 MHz clock (config 0x60, a word) then enable (lock 0x68): ~2 s
    const esb = "for d in /sys/bus/pci/devices/*; do [ $(cat $d/device) = 0x25ab ] || continue; printf '\\004\\000' | dd of=$d/config bs=2 seek=48 conv=notrunc; printf '\\002' | dd of=$d/config bs=1 seek=104 conv=notrunc; done";
    await typeLine('live', esb);
    await waitFor('WATCHDOG', () => events.some((event) => event.event === 'WATCHDOG' && event.details.action === 'pause'), 60_000);
    await waitFor('paused by the watchdog', async () => {
      const now = await client.call(NODE, 'domain.get', { id: 'live' });
      return now.state === 'paused' && now.reason === 'watchdog';
    }, 30_000);
    sub.unsubscribe();
    await client.call(NODE, 'domain.state', { id: 'live', change: { action: 'destroy' } });
    await rejectsWith(client.call(NODE, 'domain.vcpus.set', { id: 'live', set: { count: 2, live: true } }), 'OPERATION_INVALID');
  }, 400_000);
});

describe('transient domains (libvirt create)', () => {
  const gone = (id: string) => waitFor(`${id} removed`, () => client.call(NODE, 'domain.get', { id }).then(() => false, (error: { code?: string }) => error.code === 'NO_DOMAIN'), 30_000);

  it('on the test driver: created running and not persistent, removed once destroyed; a failed start leaves nothing', async () => {
    const domain = await client.call(NODE, 'domain.create', { name: 'ttrans', driver: 'test' });
    expect(domain).toMatchObject({ state: 'running', persistent: false });
    await client.call(NODE, 'domain.state', { id: 'ttrans', change: { action: 'destroy' } });
    expect(await gone('ttrans')).toBe(true);
    await rejectsWith(client.call(NODE, 'domain.create', { name: 'qtrans', driver: 'qemu', os: { kernel: '/nonexistent/vmlinuz' } }), 'OPERATION_FAILED');
    await rejectsWith(client.call(NODE, 'domain.get', { id: 'qtrans' }), 'NO_DOMAIN');
  });

  it.skipIf(!QEMU)('on the qemu driver: the guest refuses a memory module unplug (DEVICE_REMOVAL_FAILED), powers off and the domain is gone', async () => {
    const guestMedia = await ensureTestGuest();
    const { events, sub } = collectDomainEvents();
    await client.call(NODE, 'domain.create', {
      name: 'qtrans',
      driver: 'qemu',
      memory: 256,
      maxMemory: { memory: 512, slots: 1 },
      os: { kernel: guestMedia.kernel, initrd: guestMedia.initrd, cmdline: guestMedia.cmdline },
    });
    await waitFor('GUEST-READY', async () => (await consoleText('qtrans')).includes(GUEST_MARKERS.ready), 200_000);
    // x86 QEMU has no DEVICE_UNPLUG_GUEST_ERROR for a refused eject: its ACPI _OST answer (0x80) is what libvirt reads
    const qmp = (command: string, args: Record<string, unknown>) => client.call(NODE, 'domain.qemu.monitor', { id: 'qtrans', monitor: { command, arguments: args } });
    await qmp('object-add', { 'qom-type': 'memory-backend-ram', id: 'mem1', size: 128 * 1024 * 1024 });
    await qmp('device_add', { driver: 'pc-dimm', id: 'dimm0', memdev: 'mem1' });
    expect(await guestValue('qtrans', 'MEMHP', 'echo 0 > /sys/firmware/acpi/hotplug/memory/enabled; cat /sys/firmware/acpi/hotplug/memory/enabled', () => true)).toBe('0');
    await qmp('device_del', { id: 'dimm0' });
    await waitFor('DEVICE_REMOVAL_FAILED', () => events.some((event) => event.event === 'DEVICE_REMOVAL_FAILED' && event.details.device === 'dimm0'), 60_000);
    sub.unsubscribe();
    await client.call(NODE, 'domain.state', { id: 'qtrans', change: { action: 'shutdown', timeout: 60 } }, { timeoutMs: 70_000 });
    expect(await gone('qtrans')).toBe(true);
  }, 300_000);
});

describe('live resources on the test driver', () => {
  it('simulates setvcpus and setmem within the maximum and shows them in stats', async () => {
    await client.call(NODE, 'domain.define', { name: 'tlive', driver: 'test', vcpus: 1, memory: 512, cpu: { maxVcpus: 4 } });
    await client.call(NODE, 'domain.state', { id: 'tlive', change: { action: 'start' } });
    await client.call(NODE, 'domain.vcpus.set', { id: 'tlive', set: { count: 3 } });
    await client.call(NODE, 'domain.memory.set', { id: 'tlive', set: { memory: 128 } });
    const stats = await client.call(NODE, 'domain.stats', { id: 'tlive' });
    expect(stats.vcpu).toMatchObject({ current: 3, maximum: 4 });
    expect(stats.memory?.currentBytes).toBe(128 * 1024 * 1024);
    await rejectsWith(client.call(NODE, 'domain.vcpus.set', { id: 'tlive', set: { count: 5 } }), 'INVALID_ARG');
  });
});

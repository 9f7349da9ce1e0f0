import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { VirtClient } from '@virtbus/client';
import { LibvirtClient } from '@virtbus/drivers';
import { hasBinaryOrSkip, rejectsWith, spawnAgent, startLibvirt, storedNodeEvents, tearDown, useNatsBus, VIRSH, waitFor, type AgentProcess, type Libvirt } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const LIBVIRTD = hasBinaryOrSkip('libvirtd') && hasBinaryOrSkip('virsh');
const NODE = 'lvnode';

/** The agent with `--drivers libvirt --libvirt-uri test+unix:///default?socket=…` against a private libvirtd, over NATS. */
describe.skipIf(!LIBVIRTD)('agent with driver libvirt against a real libvirtd', () => {
  const tag = `vbla${randomBytes(3).toString('hex')}`;
  let root: string;
  let libvirt: Libvirt;
  const bus = useNatsBus();
  let client: VirtClient;
  let agent: AgentProcess | undefined;
  let uri: string;
  const virsh = async (...args: string[]) =>
    (await run(VIRSH, ['-q', '-c', uri, ...args]).catch((error: { stderr?: string }) => Promise.reject(new Error(`virsh ${args.join(' ')}: ${error.stderr}\nagent: ${agent?.output().slice(-3000)}`)))).stdout.trim();
  const startAgent = () =>
    spawnAgent({ node: NODE, natsUrl: bus.server.url, stateDir: join(root, 'agent'), drivers: 'libvirt', extraArgs: ['--libvirt-uri', uri], env: { VIRTBUS_METRICS_ADDRESS: 'off' } });

  beforeAll(async () => {
    // short path: unix socket paths are limited to 107 bytes
    root = await mkdtemp(join('/tmp', `${tag}-`));
    libvirt = await startLibvirt(join(root, 'lv'));
    uri = `test+unix:///default?socket=${libvirt.socket}`;
    client = new VirtClient(bus.nc);
    agent = await startAgent();
  });

  afterAll(async () => {
    await tearDown(agent, libvirt, root);
  });

  it('reports the driver with libvirt\'s hypervisor and runs the lifecycle in libvirt, adopting after an agent restart', async () => {
    const info = await client.call(NODE, 'node.info', {});
    expect(info.drivers).toEqual([expect.objectContaining({ name: 'libvirt', domainTypes: ['libvirt'], available: true, capabilities: ['lifecycle', 'console', 'stats', 'native-xml', 'hypervisor:test'] })]);

    const name = `${tag}-web`;
    const domain = await client.call(NODE, 'domain.define', { name, driver: 'libvirt', vcpus: 2, memory: 128 });
    expect(domain).toMatchObject({ name, state: 'shutoff', driver: 'libvirt', hypervisor: 'test' });
    // libvirt holds no definition before the first start
    await rejectsWith(client.call(NODE, 'domain.xml', { id: name }), 'NO_DOMAIN');
    const steps = [
      [{ action: 'start' }, 'running', 'booted', 'running'],
      [{ action: 'suspend' }, 'paused', 'user', 'paused'],
      [{ action: 'resume' }, 'running', 'unpaused', 'running'],
      [{ action: 'shutdown', timeout: 5 }, 'shutoff', 'shutdown', 'shut off'],
      [{ action: 'start' }, 'running', 'booted', 'running'],
    ] as const;
    for (const [change, state, reason, virshState] of steps) {
      const after = await client.call(NODE, 'domain.state', { id: name, change });
      expect([after.state, after.reason]).toEqual([state, reason]);
      expect(await virsh('domstate', name)).toBe(virshState);
    }
    expect(await virsh('dominfo', name)).toMatch(/Max memory:\s+131072 KiB/);
    const { xml } = await client.call(NODE, 'domain.xml', { id: name });
    expect(xml.trim()).toBe(await virsh('dumpxml', name));
    expect(xml).toContain(`<uuid>${domain.uuid}</uuid>`);
    expect(await client.call(NODE, 'domain.stats', { id: name })).toMatchObject({ state: 'running', memory: { maximumBytes: 128 * 1024 * 1024 }, vcpu: { current: 2 } });

    // the agent goes, libvirt keeps the domain running; the next agent reads its state back
    // (test:///default lives in libvirtd while a connection holds it: this one does, as a host's other users would)
    const holder = await LibvirtClient.connect({ socket: libvirt.socket, uri: 'test:///default' });
    try {
      await agent!.stop();
      agent = undefined;
      expect(await virsh('domstate', name)).toBe('running');
      agent = await startAgent();
      expect(await client.call(NODE, 'domain.get', { id: name })).toMatchObject({ state: 'running' });
    } finally {
      await holder.close();
    }

    expect(await client.call(NODE, 'domain.state', { id: name, change: { action: 'destroy' } })).toMatchObject({ state: 'shutoff', reason: 'destroyed' });
    await client.call(NODE, 'domain.undefine', { id: name });
    await rejectsWith(client.call(NODE, 'domain.get', { id: name }), 'NO_DOMAIN');
    expect(await virsh('list', '--all', '--name')).not.toContain(name);
  });

  it('publishes what virsh does to a domain as numbered lifecycle events, in order, through the outbox', async () => {
    const name = `${tag}-ext`;
    const { uuid } = await client.call(NODE, 'domain.define', { name, driver: 'libvirt' });
    await client.call(NODE, 'domain.state', { id: name, change: { action: 'start' } });
    // from the agent's own STARTED on (DEFINED came before)
    const eventsOf = async () => (await storedNodeEvents(bus.nc, NODE)).filter((event) => event.uuid === uuid && event.type !== 'DEFINED');
    const startedAt = (await waitFor('STARTED stored', async () => (await eventsOf())[0], 10_000)).seq;
    for (const command of ['suspend', 'resume', 'destroy', 'start']) {
      const before = (await eventsOf()).length;
      await virsh(command, name);
      await waitFor(`virsh ${command} published`, async () => (await eventsOf()).length > before, 10_000);
    }
    const events = await eventsOf();
    expect(events.map((event) => [event.type, event.detail, event.state, event.reason])).toEqual([
      ['STARTED', 'BOOTED', 'running', 'booted'],
      ['SUSPENDED', 'PAUSED', 'paused', 'user'],
      ['RESUMED', 'UNPAUSED', 'running', 'unpaused'],
      ['STOPPED', 'DESTROYED', 'shutoff', 'destroyed'],
      ['STARTED', 'BOOTED', 'running', 'booted'],
    ]);
    expect(events.map((event) => event.seq)).toEqual(events.map((_, i) => startedAt + i));
    expect(await client.call(NODE, 'domain.get', { id: name })).toMatchObject({ state: 'running', reason: 'booted' });
    await client.call(NODE, 'domain.state', { id: name, change: { action: 'destroy' } });
    await client.call(NODE, 'domain.undefine', { id: name });
  });

  it('refuses what the driver cannot render yet', async () => {
    await rejectsWith(
      client.call(NODE, 'domain.define', { name: `${tag}-disk`, driver: 'libvirt', disks: [{ source: { pool: 'default', volume: 'none' } }] }),
      'OPERATION_UNSUPPORTED',
    );
  });
});

import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
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
  /** Holds test:///default open from before the agent starts (libvirtd frees it when its last connection goes). */
  let holder: LibvirtClient | undefined;
  const old = { name: `${tag}-old`, uuid: randomUUID(), id: 0 };
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
    // a domain the host's libvirt already runs before virtbus arrives
    holder = await LibvirtClient.connect({ socket: libvirt.socket, uri: 'test:///default' });
    const xml = join(root, 'old.xml');
    await writeFile(xml, `<domain type='test'><name>${old.name}</name><uuid>${old.uuid}</uuid><description>kept by libvirt</description><memory unit='MiB'>96</memory><vcpu>2</vcpu><os><type>hvm</type></os></domain>`);
    await virsh('define', xml);
    await virsh('start', old.name);
    old.id = Number(await virsh('domid', old.name));
    agent = await startAgent();
  });

  afterAll(async () => {
    await tearDown(agent, holder, libvirt, root);
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
    await agent!.stop();
    agent = undefined;
    expect(await virsh('domstate', name)).toBe('running');
    agent = await startAgent();
    expect(await client.call(NODE, 'domain.get', { id: name })).toMatchObject({ state: 'running' });

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

  it('imports a domain virsh defined and started before the agent: it keeps running with its libvirt id and XML, then stops and starts through virtbus', async () => {
    await rejectsWith(client.call(NODE, 'domain.get', { id: old.name }), 'NO_DOMAIN');
    const { imported, remaining } = await client.call(NODE, 'domain.import', { domains: [old.name] });
    expect(remaining).toBe(0);
    expect(imported).toEqual([
      expect.objectContaining({ name: old.name, uuid: old.uuid, driver: 'libvirt', hypervisor: 'test', state: 'running', id: old.id, config: expect.objectContaining({ memory: 96, vcpus: 2 }) }),
    ]);
    expect(await virsh('domid', old.name)).toBe(String(old.id));
    expect(await client.call(NODE, 'domain.get', { id: String(old.id) })).toMatchObject({ uuid: old.uuid });
    const events = (await storedNodeEvents(bus.nc, NODE)).filter((event) => event.uuid === old.uuid);
    expect(events.map((event) => [event.type, event.state])).toEqual([
      ['DEFINED', 'shutoff'],
      ['STARTED', 'running'],
    ]);
    await rejectsWith(client.call(NODE, 'domain.import', { domains: [old.name] }), 'DOMAIN_EXISTS');
    await rejectsWith(client.call(NODE, 'domain.import', { domains: [`${tag}-none`] }), 'NO_DOMAIN');

    // all the rest: test:///default's own running domain `test`; then nothing is left
    const rest = await client.call(NODE, 'domain.import', {});
    expect(rest.imported.map((domain) => [domain.name, domain.state, domain.id])).toEqual([['test', 'running', Number(await virsh('domid', 'test'))]]);
    expect(await client.call(NODE, 'domain.import', {})).toEqual({ imported: [], remaining: 0 });

    // libvirt's non-lifecycle events reach the stream in the contract's catalogue
    await virsh('desc', old.name, '--live', '--title', 'imported');
    const metadata = await waitFor('METADATA_CHANGE stored', async () => (await storedNodeEvents(bus.nc, NODE)).find((event) => event.uuid === old.uuid && (event as { event?: string }).event === 'METADATA_CHANGE'), 10_000);
    expect(metadata).toMatchObject({ kind: 'domain.event', name: old.name, eventId: 23, details: { metadata: 'title' } });

    // stopped and started through virtbus: libvirt's XML stays the definition (a define from virtbus' config would drop the description)
    expect(await client.call(NODE, 'domain.state', { id: old.name, change: { action: 'destroy' } })).toMatchObject({ state: 'shutoff', reason: 'destroyed' });
    expect(await virsh('domstate', old.name)).toBe('shut off');
    const started = await client.call(NODE, 'domain.state', { id: old.name, change: { action: 'start' } });
    expect(started).toMatchObject({ state: 'running', id: Number(await virsh('domid', old.name)) });
    expect(started.id).not.toBe(old.id);
    expect(await virsh('dumpxml', old.name)).toContain('<description>kept by libvirt</description>');
    await client.call(NODE, 'domain.state', { id: old.name, change: { action: 'destroy' } });
    await client.call(NODE, 'domain.undefine', { id: old.name });
    expect(await virsh('list', '--all', '--name')).not.toContain(old.name);
  });
});

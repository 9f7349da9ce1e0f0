import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { VirtError, type Domain, type DomainState, type LifecycleEvent, type LifecycleType } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { canMountTmpfs, fillFileSystem, spawnAgent, startNatsServer, type AgentProcess, type NatsServerHandle, tearDown } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';


const MOUNT = canMountTmpfs();


// skipped (reason: mounting a tmpfs needs root) where mount is not permitted
describe.runIf(MOUNT)('a state directory that is full (tmpfs)', () => {
  let work = '';
  let state = '';
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let client: VirtClient;
  let agent: AgentProcess;
  const events: LifecycleEvent[] = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'virtbus-full-'));
    state = join(work, 'state');
    mkdirSync(state);
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', state]).status).toBe(0);
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    client = new VirtClient(nc);
    nc.subscribe('virt.v1.full.events.domain.>', {
      callback: (_error, msg) => {
        events.push(msg.json<LifecycleEvent>());
      },
    });
    agent = await startAgent();
  }, 60_000);

  const startAgent = () => spawnAgent({ node: 'full', natsUrl: nats.url, stateDir: state, extraArgs: ['--metrics-address', 'off', '--stats-interval', '0'] });

  /** Destroys (or suspends) the running domains one by one (each a log append) until one finds the disk full; returns it. */
  async function destroyUntilFull(names: string[], action: 'destroy' | 'suspend' = 'destroy'): Promise<{ name: string; failure: unknown }> {
    for (const name of names) {
      const domain = await client.call('full', 'domain.get', { id: name });
      if (domain.state !== 'running') continue;
      const failure = await client.call('full', 'domain.state', { id: name, change: { action } }).then(
        () => undefined,
        (error: unknown) => error,
      );
      if (failure !== undefined) return { name, failure };
    }
    throw new Error(`every ${action} found room on the full disk`);
  }

  /** Polls domain.get until `until` holds (bounded: the agent retries a pending write with backoff up to 5 s). */
  async function waitFor(name: string, until: (domain: Domain) => boolean): Promise<Domain> {
    let domain = await client.call('full', 'domain.get', { id: name });
    for (let round = 0; round < 200 && !until(domain); round++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      domain = await client.call('full', 'domain.get', { id: name });
    }
    return domain;
  }

  /** Waits for `count` events that match (the publisher sends after the reply: later on a loaded machine), then a while for a wrong extra one. */
  async function expectEvents(match: (event: LifecycleEvent) => boolean, count: number): Promise<LifecycleEvent[]> {
    for (const deadline = Date.now() + 30_000; events.filter(match).length < count && Date.now() < deadline; ) await new Promise((resolve) => setTimeout(resolve, 50));
    await nc.flush();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const matching = events.filter(match);
    expect(matching).toHaveLength(count);
    return matching;
  }

  afterAll(async () => {
    await tearDown(agent, nc, nats);
    if (state) spawnSync('umount', [state]);
    await tearDown(work);
  });

  it('start answers STORAGE_FULL and leaves the domain shut off (the start is undone), and works once there is space', async () => {
    const domain = await client.call('full', 'domain.define', { name: 'vm1', driver: 'test', vcpus: 1, memory: 64 });
    const filler = join(state, 'filler');
    await fillFileSystem(filler);
    // Appends may still fit in the last page of the event log on a full tmpfs: start and stop until a start's record does not.
    let failure: unknown;
    let starts = 0;
    for (let round = 0; round < 500 && failure === undefined; round++) {
      failure = await client.call('full', 'domain.state', { id: 'vm1', change: { action: 'start' } }).then(
        () => void (starts += 1),
        (error: unknown) => error,
      );
      if (failure === undefined) await client.call('full', 'domain.state', { id: 'vm1', change: { action: 'destroy' } }).catch(() => undefined);
    }
    expect(VirtError.is(failure, 'STORAGE_FULL'), JSON.stringify(failure)).toBe(true);
    expect((failure as VirtError).message).toMatch(/ENOSPC|no space/i);
    expect((await client.call('full', 'domain.get', { id: 'vm1' })).state).toBe('shutoff');
    await rm(filler);
    const started = await client.call('full', 'domain.state', { id: 'vm1', change: { action: 'start' } });
    expect(started.state).toBe('running');
    starts += 1;
    // the refused start published nothing
    await expectEvents((event) => event.uuid === domain.uuid && event.type === 'STARTED', starts);
  });

  it('a destroy that cannot be recorded answers STORAGE_FULL, shows the domain shut off with its write pending, and records it once there is room', async () => {
    const names = Array.from({ length: 40 }, (_, index) => `d${index}`);
    for (const name of names) {
      await client.call('full', 'domain.define', { name, driver: 'test', vcpus: 1, memory: 64 });
      await client.call('full', 'domain.state', { id: name, change: { action: 'start' } });
    }
    const filler = join(state, 'filler');
    await fillFileSystem(filler);
    const { name, failure } = await destroyUntilFull(names);
    expect(VirtError.is(failure, 'STORAGE_FULL'), JSON.stringify(failure)).toBe(true);
    expect((failure as VirtError).message).toMatch(/ENOSPC|no space/i);
    // the guest is gone: memory says so, marked as not yet on disk, and nothing was published
    const pending = await client.call('full', 'domain.get', { id: name });
    expect(pending.state).toBe('shutoff');
    expect(pending.persistPending).toBe(true);
    expect(events.filter((event) => event.name === name && event.type === 'STOPPED')).toHaveLength(0);
    // another change of that domain waits for its record
    const refused = await client.call('full', 'domain.state', { id: name, change: { action: 'start' } }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(VirtError.is(refused, 'STORAGE_FULL'), JSON.stringify(refused)).toBe(true);
    await rm(filler);
    const written = await waitFor(name, (domain) => domain.persistPending !== true);
    expect(written.persistPending).toBeUndefined();
    expect(written.state).toBe('shutoff');
    const stopped = await expectEvents((event) => event.name === name && event.type === 'STOPPED', 1);
    expect(stopped[0]!.detail).toBe('DESTROYED');
  }, 120_000);

  /** Kills the agent with a change unwritten, makes room, restarts it: the domain comes back in `state` with that change's one event. */
  async function crashFreeAndRestart(filler: string, name: string, state: DomainState, type: LifecycleType): Promise<void> {
    await agent.kill('SIGKILL');
    await rm(filler);
    agent = await startAgent();
    const after = await client.call('full', 'domain.get', { id: name });
    expect(after.state).toBe(state);
    expect(after.persistPending).toBeUndefined();
    await expectEvents((event) => event.name === name && event.type === type, 1);
  }

  it('an agent killed before a pending destroy was written comes back with the domain shut off and records the STOPPED event', async () => {
    const filler = join(state, 'filler');
    await fillFileSystem(filler);
    const running = (await client.call('full', 'domain.list', {})).domains.filter((domain) => domain.state === 'running').map((domain) => domain.name);
    const { name, failure } = await destroyUntilFull(running);
    expect(VirtError.is(failure, 'STORAGE_FULL'), JSON.stringify(failure)).toBe(true);
    await crashFreeAndRestart(filler, name, 'shutoff', 'STOPPED');
    // the domains that were not touched are still running
    expect((await client.call('full', 'domain.list', { state: 'running' })).domains.length).toBeGreaterThan(0);
  }, 120_000);

  it('a suspend that cannot be recorded shows the domain paused and pending; after an agent crash it comes back paused with its SUSPENDED event', async () => {
    const filler = join(state, 'filler');
    await fillFileSystem(filler);
    const running = (await client.call('full', 'domain.list', { state: 'running' })).domains.map((domain) => domain.name);
    const { name, failure } = await destroyUntilFull(running, 'suspend');
    expect(VirtError.is(failure, 'STORAGE_FULL'), JSON.stringify(failure)).toBe(true);
    expect(await client.call('full', 'domain.get', { id: name })).toMatchObject({ state: 'paused', persistPending: true });
    await crashFreeAndRestart(filler, name, 'paused', 'SUSPENDED');
  }, 120_000);
});

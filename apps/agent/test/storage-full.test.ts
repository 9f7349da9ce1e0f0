import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { VirtError, type LifecycleEvent } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { canMountTmpfs, fillFileSystem, spawnAgent, startNatsServer, type AgentProcess, type NatsServerHandle } from '@virtbus/testing';
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
    agent = await spawnAgent({ node: 'full', natsUrl: nats.url, stateDir: state, extraArgs: ['--metrics-address', 'off', '--stats-interval', '0'] });
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    await nc?.close();
    await nats?.stop();
    if (state) spawnSync('umount', [state]);
    if (work) await rm(work, { recursive: true, force: true });
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
    await nc.flush();
    await new Promise((resolve) => setTimeout(resolve, 500));
    // the refused start published nothing
    expect(events.filter((event) => event.uuid === domain.uuid && event.type === 'STARTED')).toHaveLength(starts);
  });
});

import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { type LifecycleEvent, VirtError } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { type AgentProcess, hasBinaryOrSkip, type NatsServerHandle, QUIET_AGENT_ARGS, spawnAgent, startNatsServer, storedNodeEvents, tearDown, waitForStoredNodeEvents } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventLog } from '../src/events/log.js';

const NODE = 'durable';
let workDir: string;
let storeDir: string;
let nats: NatsServerHandle;
let nc: NatsConnection;
let client: VirtClient;
let agent: AgentProcess;

const storedEvents = () => storedNodeEvents(nc, NODE);
const waitForStored = (count: number, timeoutMs = 20_000) => waitForStoredNodeEvents(nc, NODE, count, timeoutMs);

async function readOutbox(): Promise<{ lastSeq: number; pending: unknown[] }> {
  return EventLog.inspect(join(workDir, 'agent', 'events'));
}

/** Waits until the outbox holds `count` unacknowledged events (or the time is up) and returns how many it holds. */
async function waitForPending(count: number, timeoutMs: number): Promise<number> {
  const until = Date.now() + timeoutMs;
  let pending = 0;
  while (Date.now() < until) {
    pending = (await readOutbox().catch(() => ({ pending: [] }))).pending.length;
    if (pending >= count) return pending;
    await sleep(50);
  }
  return pending;
}

function expectContiguous(events: LifecycleEvent[], last: number): void {
  expect(events.map((event) => event.seq)).toEqual(Array.from({ length: last }, (_, index) => index + 1));
}

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'virtbus-durability-'));
  storeDir = join(workDir, 'js');
  nats = await startNatsServer({ storeDir });
  nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  client = new VirtClient(nc);
  agent = await spawnAgent({ node: NODE, natsUrl: nats.url, stateDir: join(workDir, 'agent'), extraArgs: QUIET_AGENT_ARGS });
});

afterAll(() => tearDown(agent, nc, nats, workDir));

describe('lifecycle events survive restarts with no gap and no duplicate in the node sequence', () => {
  let defined = 0;

  it('an agent SIGKILLed in the middle of a burst publishes what it recorded once it is back', async () => {
    const burst = Array.from({ length: 24 }, (_, index) =>
      client.call(NODE, 'domain.define', { name: `burst-${index}`, driver: 'test' }, { timeoutMs: 5000 }).then(
        () => true,
        () => false,
      ),
    );
    // Kill as soon as a few calls have answered: the rest are recorded, in flight, or never run.
    await Promise.race([Promise.all(burst.slice(0, 4)), sleep(5000)]);
    await agent.kill('SIGKILL');
    const answered = (await Promise.all(burst)).filter(Boolean).length;

    agent = await spawnAgent({ node: NODE, natsUrl: nats.url, stateDir: join(workDir, 'agent'), extraArgs: QUIET_AGENT_ARGS });
    const { domains } = await client.call(NODE, 'domain.list', {});
    defined = domains.length;
    expect(defined).toBeGreaterThanOrEqual(answered);
    const lastSeq = (await readOutbox()).lastSeq;
    const events = await waitForStored(lastSeq);
    expectContiguous(events, lastSeq);
    // Exactly the persisted domains have a DEFINED event: a domain saved just before the kill gets its event on restart.
    const definedEvents = events.filter((event) => event.kind === 'domain.lifecycle' && event.type === 'DEFINED');
    console.info(
      `agent SIGKILL: ${answered} defines answered, ${defined} domains persisted, node seq 1..${lastSeq} stored without gap, ` +
        `${definedEvents.length} DEFINED events, ${(agent.output().match(/lost by an unclean stop/g) ?? []).length} recovered at restart`,
    );
    expect(definedEvents.map((event) => event.uuid).sort()).toEqual(domains.map((domain) => domain.uuid).sort());
  });

  it('events recorded while nats-server is down are published in order when it is back on the same store', async () => {
    // A slow hypervisor (3 s per call) lets the changes complete while the server is down.
    await agent.stop();
    agent = await spawnAgent({ node: NODE, natsUrl: nats.url, stateDir: join(workDir, 'agent'), extraArgs: [...QUIET_AGENT_ARGS, '--test-latency-ms', '3000'] });
    const { domains } = await client.call(NODE, 'domain.list', {});
    expect(domains.length).toBeGreaterThan(0);
    const before = (await readOutbox()).lastSeq;
    expect((await storedEvents()).length).toBe(before);
    expect(domains.every((domain) => domain.state === 'shutoff')).toBe(true);
    const starts = domains.map((domain) =>
      client.call(NODE, 'domain.state', { id: domain.uuid, change: { action: 'start' } }, { timeoutMs: 1000 }).then(
        () => 'answered',
        () => 'unanswered',
      ),
    );
    await nc.flush();
    // delivery on loopback takes well under a millisecond; the driver then works 3 s on each while the server is gone
    await sleep(1000);
    process.kill(nats.pid, 'SIGKILL');
    const outcomes = await Promise.all(starts);
    // every change finishes while nats-server is down: its event waits in the outbox
    const pendingWhileDown = await waitForPending(domains.length, 10_000);
    await sleep(500);
    nats = await startNatsServer({ port: nats.port, storeDir });

    const expected = before + domains.length;
    const events = await waitForStored(expected, 30_000);
    console.info(`nats SIGKILL: ${domains.length} starts (${outcomes.filter((o) => o === 'answered').length} answered before the kill), ${pendingWhileDown} events in the outbox while the server was down, ${events.length} stored in all`);
    expect(pendingWhileDown).toBe(domains.length);
    expect(events.length).toBe(expected);
    expectContiguous(events, expected);
    const burst = events.slice(before);
    expect(burst.map((event) => event.type)).toEqual(domains.map(() => 'STARTED'));
    expect(burst.map((event) => event.uuid).sort()).toEqual(domains.map((domain) => domain.uuid).sort());

    // The agent reconnected, serves requests again, and every domain runs.
    const after = await client.call(NODE, 'domain.list', {}, { timeoutMs: 10_000 });
    expect(after.domains.map((domain) => domain.state)).toEqual(domains.map(() => 'running'));
    await client.call(NODE, 'domain.state', { id: domains[0]!.uuid, change: { action: 'destroy' } }, { timeoutMs: 10_000 });
    expectContiguous(await waitForStored(expected + 1), expected + 1);
  });
});

/** Whether an immutable file refuses appends through an fd opened before (ext4 does; tmpfs lets them through). */
function immutableStopsAppends(dir: string): boolean {
  const probe = join(dir, 'immutable-probe');
  const fd = openSync(probe, 'a');
  try {
    if (spawnSync('chattr', ['+i', probe]).status !== 0) return false;
    try {
      writeSync(fd, 'x');
      return false;
    } catch {
      return true;
    } finally {
      spawnSync('chattr', ['-i', probe]);
    }
  } finally {
    closeSync(fd);
    rmSync(probe);
  }
}

describe.runIf(hasBinaryOrSkip('qemu-system-x86_64'))('a QEMU domain stopped while its state is being recorded', () => {
  const node = 'qemu-crash';
  let stateDir: string;
  let qemuAgent: AgentProcess;
  const start = () => spawnAgent({ node, natsUrl: nats.url, stateDir, drivers: 'qemu', extraArgs: QUIET_AGENT_ARGS });

  beforeAll(async () => {
    stateDir = join(workDir, node);
    qemuAgent = await start();
    await client.call(node, 'domain.define', { name: 'q', driver: 'qemu', vcpus: 1, memory: 64 });
  });

  afterAll(async () => {
    await client.call(node, 'domain.state', { id: 'q', change: { action: 'destroy' } }).catch(() => undefined);
    await qemuAgent.stop();
  });

  // A destroy records the stop in its log record only (runtimeCleared): the domain file keeps the ended run's QEMU facts.
  it('destroyed just before an agent crash, comes back shut off as destroyed, its old runtime dropped at load, and starts again', async () => {
    const { uuid } = await client.call(node, 'domain.get', { id: 'q' });
    expect((await client.call(node, 'domain.state', { id: 'q', change: { action: 'start' } })).state).toBe('running');
    expect((await client.call(node, 'domain.state', { id: 'q', change: { action: 'destroy' } })).state).toBe('shutoff');
    const file = JSON.parse(await readFile(join(stateDir, 'domains', `${uuid}.json`), 'utf8')) as { runtime?: unknown };
    expect(file.runtime).toBeDefined();
    await qemuAgent.kill('SIGKILL');
    qemuAgent = await start();
    expect(await client.call(node, 'domain.get', { id: 'q' })).toMatchObject({ state: 'shutoff', reason: 'destroyed' });
    // the load, not the adopt, knew the run had ended
    expect(qemuAgent.output()).not.toMatch(/exited while the agent was away/);
    expect((await client.call(node, 'domain.state', { id: 'q', change: { action: 'start' } })).state).toBe('running');
    expect((await client.call(node, 'domain.state', { id: 'q', change: { action: 'destroy' } })).state).toBe('shutoff');
  }, 60_000);

  // QEMU reports its exit while the destroy still runs: that observed change must not let the reply out before its record.
  it('a destroy whose stop cannot be recorded answers the write error, not shutoff before the state is on disk', async (context) => {
    if (!hasBinaryOrSkip('chattr') || !immutableStopsAppends(stateDir)) context.skip('needs chattr and a file system whose immutable files refuse appends (ext4; not tmpfs)');
    expect((await client.call(node, 'domain.state', { id: 'q', change: { action: 'start' } })).state).toBe('running');
    const events = join(stateDir, 'events');
    const segments = readdirSync(events)
      .filter((file) => file.endsWith('.jsonl'))
      .map((file) => join(events, file));
    expect(spawnSync('chattr', ['+i', ...segments]).status).toBe(0);
    let failure: unknown;
    try {
      failure = await client.call(node, 'domain.state', { id: 'q', change: { action: 'destroy' } }).then(
        (domain) => domain,
        (error: unknown) => error,
      );
    } finally {
      spawnSync('chattr', ['-i', ...segments]);
    }
    expect(VirtError.is(failure, 'OPERATION_FAILED'), JSON.stringify(failure)).toBe(true);
    expect((failure as VirtError).message).toMatch(/could not be written.*(EPERM|operation not permitted)/i);
    // the stop is recorded once the log takes writes again
    let domain = await client.call(node, 'domain.get', { id: 'q' });
    for (let round = 0; round < 200 && domain.persistPending; round++) {
      await sleep(100);
      domain = await client.call(node, 'domain.get', { id: 'q' });
    }
    expect(domain).toMatchObject({ state: 'shutoff' });
    expect(domain.persistPending).toBeUndefined();
  }, 60_000);
});

import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { type LifecycleEvent } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { type AgentProcess, type NatsServerHandle, QUIET_AGENT_ARGS, spawnAgent, startNatsServer, storedNodeEvents, tearDown, waitForStoredNodeEvents } from '@virtbus/testing';
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

import { access, mkdtemp, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { type DomainState } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { type AgentProcess, type NatsServerHandle, QUIET_AGENT_ARGS, spawnAgent, startNatsServer, tearDown, waitForStoredNodeEvents } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventLog } from '../src/events/log.js';

const NODE = 'scale';
const DOMAINS = 32;
let workDir: string;
let nats: NatsServerHandle;
let nc: NatsConnection;
let client: VirtClient;
let agent: AgentProcess | undefined;

const agentOptions = () => ({ node: NODE, natsUrl: nats.url, stateDir: join(workDir, 'agent'), extraArgs: QUIET_AGENT_ARGS });

const waitForStored = (count: number, timeoutMs = 60_000) => waitForStoredNodeEvents(nc, NODE, count, timeoutMs);

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'virtbus-hostscale-'));
  nats = await startNatsServer({ storeDir: join(workDir, 'js') });
  nc = await connect({ servers: nats.url });
  client = new VirtClient(nc);
  agent = await spawnAgent(agentOptions());
});

afterAll(() => tearDown(agent, nc, nats, workDir));

describe('parallel state changes on many domains survive an agent SIGKILL', () => {
  it('keeps every answered change in the domain state and every event in the stream, numbered 1..lastSeq without a gap', async () => {
    const defined = await Promise.all(Array.from({ length: DOMAINS }, (_, index) => client.call(NODE, 'domain.define', { name: `scale-${index}`, driver: 'test' })));
    const uuids = defined.map((domain) => domain.uuid);

    // Each domain flips start/destroy in its own loop (one call at a time per domain, all domains in parallel).
    const acked = new Map<string, { starts: number; destroys: number; last: DomainState }>(uuids.map((uuid) => [uuid, { starts: 0, destroys: 0, last: 'shutoff' }]));
    const inFlight = new Map<string, 'start' | 'destroy'>();
    let answered = 0;
    let stop = false;
    const loops = uuids.map(async (uuid) => {
      const tally = acked.get(uuid)!;
      while (!stop) {
        const action = tally.last === 'running' ? 'destroy' : 'start';
        inFlight.set(uuid, action);
        try {
          const domain = await client.call(NODE, 'domain.state', { id: uuid, change: { action } }, { timeoutMs: 3000 });
          inFlight.delete(uuid);
          tally.last = domain.state;
          if (action === 'start') tally.starts++;
          else tally.destroys++;
          answered++;
        } catch {
          // the agent is gone: this call may or may not have been applied
          return;
        }
      }
    });
    while (answered < 20 * DOMAINS) await sleep(5);
    await agent!.kill('SIGKILL');
    stop = true;
    await Promise.all(loops);
    agent = await spawnAgent(agentOptions());

    const { lastSeq } = await EventLog.inspect(join(workDir, 'agent', 'events'));
    const events = await waitForStored(lastSeq);
    console.info(`host scale: ${answered} state changes answered on ${DOMAINS} domains before SIGKILL, node seq 1..${lastSeq}, ${events.length} stored`);
    expect(events.map((event) => event.seq)).toEqual(Array.from({ length: lastSeq }, (_, index) => index + 1));

    const { domains } = await client.call(NODE, 'domain.list', {});
    for (const uuid of uuids) {
      const tally = acked.get(uuid)!;
      const pending = inFlight.get(uuid);
      const domain = domains.find((candidate) => candidate.uuid === uuid)!;
      // The answered state, or the state the one unanswered call left.
      const allowed = pending === undefined ? [tally.last] : [tally.last, pending === 'start' ? 'running' : 'shutoff'];
      expect(allowed).toContain(domain.state);
      const mine = events.filter((event) => event.kind === 'domain.lifecycle' && event.uuid === uuid);
      const started = mine.filter((event) => event.type === 'STARTED').length;
      const stopped = mine.filter((event) => event.type === 'STOPPED').length;
      expect(started - tally.starts).toBeGreaterThanOrEqual(0);
      expect(started - tally.starts).toBeLessThanOrEqual(pending === 'start' ? 1 : 0);
      expect(stopped - tally.destroys).toBeGreaterThanOrEqual(0);
      expect(stopped - tally.destroys).toBeLessThanOrEqual(pending === 'destroy' ? 1 : 0);
      // The last event of the domain describes the state it is in.
      expect(mine[mine.length - 1]!.state).toBe(domain.state);
    }
  });
});

describe('agent start with many domains', () => {
  it('writes none of the domain files', async () => {
    const dir = join(workDir, 'agent', 'domains');
    const files = async () => {
      const names = (await readdir(dir)).filter((name) => /^[0-9a-f-]{36}\.json$/.test(name)).sort();
      return Promise.all(names.map(async (name) => ({ name, ...(({ ino, mtimeMs }) => ({ ino, mtimeMs }))(await stat(join(dir, name))) })));
    };
    const before = await files();
    expect(before.length).toBe(DOMAINS);
    await agent!.stop();
    agent = await spawnAgent(agentOptions());
    const { domains } = await client.call(NODE, 'domain.list', {});
    expect(domains).toHaveLength(DOMAINS);
    // an atomic rewrite would give a new inode and mtime
    expect(await files()).toEqual(before);
  });
});

describe('the clean-stop snapshot', () => {
  const snapshotFile = () => join(workDir, 'agent', 'clean-stop', 'domains.json');
  const exists = (path: string) => access(path).then(() => true, () => false);
  const loadedFromSnapshot = (output: string) => output.includes('domains loaded from the clean-stop snapshot');

  it('is what a start after a clean stop loads, with every domain as it was', async () => {
    const before = (await client.call(NODE, 'domain.list', {})).domains;
    await agent!.stop();
    expect(await exists(snapshotFile())).toBe(true);
    agent = await spawnAgent(agentOptions());
    expect(loadedFromSnapshot(agent.output())).toBe(true);
    expect((await client.call(NODE, 'domain.list', {})).domains).toEqual(before);
  });

  it('is not used after a change it does not hold and a crash: the log record wins', async () => {
    await agent!.stop();
    agent = await spawnAgent(agentOptions());
    expect(loadedFromSnapshot(agent.output())).toBe(true);
    const [first] = (await client.call(NODE, 'domain.list', { limit: 1 })).domains;
    // a state change is a log record only (no domain file write): the snapshot stays, stale by its log seq
    const target = first!.state === 'running' ? 'shutoff' : 'running';
    await client.call(NODE, 'domain.state', { id: first!.uuid, change: { action: target === 'running' ? 'start' : 'destroy' } });
    expect(await exists(snapshotFile())).toBe(true);
    await agent!.kill('SIGKILL');
    agent = await spawnAgent(agentOptions());
    expect(loadedFromSnapshot(agent.output())).toBe(false);
    expect(agent.output()).toContain('clean-stop snapshot is stale');
    expect((await client.call(NODE, 'domain.get', { id: first!.uuid })).state).toBe(target);
  });

  it('is removed before a domain file is written, so a crash after that write never loads it', async () => {
    await agent!.stop();
    agent = await spawnAgent(agentOptions());
    expect(loadedFromSnapshot(agent.output())).toBe(true);
    const [first] = (await client.call(NODE, 'domain.list', { limit: 1 })).domains;
    const memory = first!.config.memory === 256 ? 384 : 256;
    await client.call(NODE, 'domain.update', { id: first!.uuid, config: { memory } });
    expect(await exists(snapshotFile())).toBe(false);
    await agent!.kill('SIGKILL');
    agent = await spawnAgent(agentOptions());
    expect(loadedFromSnapshot(agent.output())).toBe(false);
    expect((await client.call(NODE, 'domain.get', { id: first!.uuid })).config.memory).toBe(memory);
  });
});

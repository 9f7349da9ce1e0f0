import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { VirtError, type Domain } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { spawnAgent, startNatsServer, type AgentProcess, type NatsServerHandle } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// A small max_payload makes a few hundred domains a reply bigger than the server carries (1 MiB needs ~2,700).
const MAX_PAYLOAD = 64 * 1024;
const DOMAINS = 400;

let nats: NatsServerHandle;
let nc: NatsConnection;
let client: VirtClient;
let workDir: string;
let agent: AgentProcess;
let exitCode: number | null | undefined;

beforeAll(async () => {
  nats = await startNatsServer({ config: `max_payload: ${MAX_PAYLOAD}` });
  workDir = await mkdtemp(join(tmpdir(), 'virtbus-big-replies-'));
  nc = await connect({ servers: nats.url });
  client = new VirtClient(nc);
  agent = await spawnAgent({ node: 'big', natsUrl: nats.url, stateDir: join(workDir, 'big') });
  void agent.exited.then((code) => (exitCode = code));
  const names = Array.from({ length: DOMAINS }, (_, index) => `vm-${String(index).padStart(4, '0')}`);
  for (let start = 0; start < names.length; start += 50) {
    await Promise.all(names.slice(start, start + 50).map((name) => client.call('big', 'domain.define', { name, driver: 'test', labels: { app: name.endsWith('0') ? 'web' : 'db' } })));
  }
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await nc?.close();
  await nats?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

async function stillServing(): Promise<void> {
  expect(exitCode, agent.output()).toBeUndefined();
  const info = await client.call('big', 'node.info', {});
  expect(info.node).toBe('big');
}

describe('replies bigger than the server max_payload', () => {
  it('a list without a limit answers the first page that fits, with a continue token, and the agent lives', async () => {
    const first = await client.call('big', 'domain.list', {});
    expect(first.domains.length).toBeGreaterThan(0);
    expect(first.domains.length).toBeLessThan(DOMAINS);
    expect(first.continue).toEqual(expect.any(String));
    expect(first.remaining).toBe(DOMAINS - first.domains.length);
    await stillServing();
  });

  it('pages through every domain exactly once, in name order', async () => {
    const seen: Domain[] = [];
    let token: string | undefined;
    do {
      const page = await client.call('big', 'domain.list', { limit: 1000, ...(token ? { continue: token } : {}) });
      seen.push(...page.domains);
      token = page.continue;
    } while (token);
    const names = seen.map((domain) => domain.name);
    expect(new Set(names).size).toBe(DOMAINS);
    expect(names).toEqual([...names].sort());
    await stillServing();
  });

  it('an operation whose reply cannot be paged answers REPLY_TOO_LARGE instead of crashing the agent', async () => {
    const error = await client.call('big', 'domain.stats.all', {}).then(
      () => undefined,
      (failure: unknown) => failure,
    );
    expect(error).toBeInstanceOf(VirtError);
    expect((error as VirtError).code).toBe('REPLY_TOO_LARGE');
    await stillServing();
  });

  it('filters by label selector on the agent', async () => {
    const web = await client.call('big', 'domain.list', { labelSelector: 'app=web' });
    expect(web.domains).toHaveLength(DOMAINS / 10);
    expect(web.continue).toBeUndefined();
    expect(web.domains.every((domain) => domain.config.labels?.['app'] === 'web')).toBe(true);
  });
});

import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Subjects, type StatsMessage } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { type AgentProcess, type NatsServerHandle, spawnAgent, startNatsServer, tearDown } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const NODE = 'statscale';
const DOMAINS = 10_000;
let workDir: string;
let nats: NatsServerHandle;
let nc: NatsConnection;
let agent: AgentProcess | undefined;

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'virtbus-statscale-'));
  nats = await startNatsServer({ storeDir: join(workDir, 'js') });
  nc = await connect({ servers: nats.url });
  agent = await spawnAgent({ node: NODE, natsUrl: nats.url, stateDir: join(workDir, 'agent'), extraArgs: ['--metrics-address', 'off', '--stats-interval', '1'] });
}, 120_000);

afterAll(() => tearDown(agent, nc, nats, workDir));

describe('stats published on the bus at 10,000 domains', () => {
  it('arrive for every domain, split into messages below the max_payload', async () => {
    const client = new VirtClient(nc);
    let next = 0;
    const uuids = new Set<string>();
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < DOMAINS) {
          const index = next++;
          uuids.add((await client.call(NODE, 'domain.define', { name: `stats-${index}`, driver: 'test' }, { timeoutMs: 30_000 })).uuid);
        }
      }),
    );
    const maxPayload = nc.info!.max_payload;
    // parts of one sample by collectedAt; the first sample that holds every domain ends the wait
    const samples = new Map<string, StatsMessage[]>();
    let complete: StatsMessage[] | undefined;
    for await (const message of nc.subscribe(Subjects.stats(NODE), { timeout: 60_000 })) {
      expect(message.data.length).toBeLessThanOrEqual(maxPayload);
      const stats = message.json<StatsMessage>();
      const parts = samples.get(stats.collectedAt) ?? [];
      parts.push(stats);
      samples.set(stats.collectedAt, parts);
      if (parts.length === stats.parts && parts.reduce((sum, part) => sum + part.domains.length, 0) === DOMAINS) {
        complete = parts;
        break;
      }
    }
    expect(complete!.length).toBeGreaterThan(1);
    expect(complete!.map((part) => part.part).sort((a, b) => a! - b!)).toEqual(Array.from({ length: complete!.length }, (_, index) => index + 1));
    expect(new Set(complete!.flatMap((part) => part.domains.map((domain) => domain.uuid)))).toEqual(uuids);
  }, 180_000);
});

import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AgentProcess, type NatsServerHandle, spawnAgent, startNatsServer, tearDown } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

describe('agent start removes temp files a crash left in the middle of an atomic write', () => {
  let work = '';
  let nats: NatsServerHandle;
  let agent: AgentProcess | undefined;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'virtbus-stale-temps-'));
    nats = await startNatsServer();
  });

  afterAll(() => tearDown(agent, nats, work));

  it('removes `.<name>.<12 hex>.tmp` files in the directories it writes and keeps everything else', async () => {
    const state = join(work, 'state');
    const leftovers = [
      join(state, 'domains', '.0f0e0d0c-0b0a-4908-8706-050403020100.json.a1b2c3d4e5f6.tmp'),
      join(state, 'idempotency', '.abc.json.00112233aabb.tmp'),
      join(state, 'events', '.acked.json.ffeeddccbbaa.tmp'),
      join(state, 'drivers', 'test', '.state.json.0123456789ab.tmp'),
    ];
    // not of the atomic-write pattern, or user data (volumes of a pool): these stay
    const keep = [
      join(state, 'domains', 'notes.tmp'),
      join(state, 'domains', '.hidden.json.xyz123456789.tmp'),
      join(state, 'domains', '.short.json.a1b2c3.tmp'),
      join(state, 'domains', 'visible.json.a1b2c3d4e5f6.tmp'),
      join(state, 'pools', 'default', '.vol.img.a1b2c3d4e5f6.tmp'),
    ];
    for (const file of [...leftovers, ...keep]) {
      await mkdir(join(file, '..'), { recursive: true });
      await writeFile(file, 'x'.repeat(1000));
    }
    agent = await spawnAgent({ node: 'stale', natsUrl: nats.url, stateDir: state, extraArgs: ['--metrics-address', 'off', '--stats-interval', '0'] });
    const present = async (file: string) => (await readdir(join(file, '..'))).includes(file.split('/').pop()!);
    for (const file of leftovers) expect(await present(file), file).toBe(false);
    for (const file of keep) expect(await present(file), file).toBe(true);
  });
});

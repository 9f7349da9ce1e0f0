import { readdir, readFile, rm, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { VirtClient } from '@virtbus/client';
import { type AgentProcess, QUIET_AGENT_ARGS, spawnAgent, tearDown, useNatsBus, useTempDir } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const NODE = 'defdur';
const work = useTempDir('virtbus-defdur-');
const bus = useNatsBus(() => ({ storeDir: join(work.path, 'js') }));
let client: VirtClient;
let agent: AgentProcess | undefined;

beforeAll(async () => {
  client = new VirtClient(bus.nc);
});

afterAll(() => tearDown(agent));

describe('a define is durable through its event log record', () => {
  it('domain files lost or torn by a crash (written without a sync) are rebuilt from the log at start', async () => {
    const stateDir = join(work.path, 'agent');
    agent = await spawnAgent({ node: NODE, natsUrl: bus.server.url, stateDir, extraArgs: QUIET_AGENT_ARGS });
    const defined = [];
    for (let index = 0; index < 12; index++) {
      defined.push(await client.call(NODE, 'domain.define', { name: `dur-${index}`, driver: 'test', vcpus: 2, memory: 96, labels: { index: String(index) } }));
    }
    await agent.kill('SIGKILL');
    // What a crash can leave of files written without a sync: none, or an empty one.
    const domainsDir = join(stateDir, 'domains');
    for (const [index, domain] of defined.entries()) {
      const path = join(domainsDir, `${domain.uuid}.json`);
      if (index % 3 === 0) await rm(path);
      else if (index % 3 === 1) await truncate(path, 0);
    }

    agent = await spawnAgent({ node: NODE, natsUrl: bus.server.url, stateDir, extraArgs: QUIET_AGENT_ARGS });
    const { domains } = await client.call(NODE, 'domain.list', {});
    expect(domains.map((domain) => domain.uuid).sort()).toEqual(defined.map((domain) => domain.uuid).sort());
    for (const domain of defined) {
      const back = await client.call(NODE, 'domain.get', { id: domain.uuid });
      expect(back.config).toEqual(domain.config);
      expect(back.state).toBe('shutoff');
    }
    // The files are whole again, so the log may drop those records.
    const files = (await readdir(domainsDir)).filter((file) => file.endsWith('.json'));
    expect(files).toHaveLength(defined.length);
    for (const file of files) expect(JSON.parse(await readFile(join(domainsDir, file), 'utf8'))).toHaveProperty('config.uuid', file.slice(0, -5));
    await agent.stop();
    agent = undefined;
  });

  it('a domain is found by domain.get as soon as its DEFINED event is out (subscribers ask for what events announce)', async () => {
    agent = await spawnAgent({ node: NODE, natsUrl: bus.server.url, stateDir: join(work.path, 'visible'), extraArgs: QUIET_AGENT_ARGS });
    const lookups: Promise<string>[] = [];
    const sub = bus.nc.subscribe(`virt.v1.${NODE}.events.domain.*.DEFINED`, {
      callback: (_error, msg) => {
        const uuid = (msg.json() as { uuid: string }).uuid;
        lookups.push(client.call(NODE, 'domain.get', { id: uuid }).then(() => 'found', (error: unknown) => `${uuid}: ${(error as Error).message}`));
      },
    });
    await bus.nc.flush();
    await Promise.all(Array.from({ length: 24 }, (_, index) => client.call(NODE, 'domain.define', { name: `vis-${index}`, driver: 'test', vcpus: 1, memory: 64 })));
    await bus.nc.flush();
    for (let waited = 0; lookups.length < 24 && waited < 100; waited++) await new Promise((resolve) => setTimeout(resolve, 50));
    sub.unsubscribe();
    expect((await Promise.all(lookups)).filter((outcome) => outcome !== 'found')).toEqual([]);
    expect(lookups).toHaveLength(24);
    await agent.stop();
    agent = undefined;
  });
});

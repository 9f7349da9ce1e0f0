import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { EVENTS_STREAM, NODES_BUCKET } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { freePort, hasBinaryOrSkip, startNatsServer, type NatsServerHandle } from '@virtbus/testing';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { startAgent, type Agent } from '../src/agent.js';

/** The config of server `index` of a three-server cluster routed over `routePorts`. */
function clusterConfig(index: number, routePorts: number[]): string {
  const routes = routePorts.filter((_, other) => other !== index).map((port) => `"nats-route://127.0.0.1:${port}"`);
  return `server_name: "nats-${index}"\ncluster { name: "virtbus", listen: "127.0.0.1:${routePorts[index]}", routes: [${routes.join(', ')}] }`;
}

describe.runIf(hasBinaryOrSkip('nats-server'))('an agent started against a JetStream cluster that is still forming', () => {
  const servers: NatsServerHandle[] = [];
  let agent: Agent | undefined;
  let nc: NatsConnection | undefined;
  let dir: string | undefined;

  afterAll(async () => {
    await agent?.close();
    await nc?.close();
    await Promise.all(servers.map((server) => server.stop()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('waits for the meta leader, then creates its stream and bucket and serves', async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtbus-cluster-start-'));
    const routePorts = [await freePort(), await freePort(), await freePort()];
    // one server of three has no quorum: JetStream cannot elect a meta leader until a second one joins
    servers.push(await startNatsServer({ config: clusterConfig(0, routePorts) }));
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const starting = startAgent({
      node: 'forming',
      nats: { servers: servers[0]!.url },
      stateDir: join(dir, 'forming'),
      drivers: ['test'],
      monitoring: { metricsAddress: 'off', statsIntervalS: 0 },
      logger,
    });
    let failure: unknown;
    starting.catch((error: unknown) => (failure = error));
    // the rest of the cluster starts only once the agent has said what it waits for (or has failed)
    while (failure === undefined && !lines.some((line) => line.includes('waiting for'))) await sleep(50);
    expect(failure).toBeUndefined();
    expect(lines.find((line) => line.includes('waiting for'))).toMatch(/JetStream/);
    servers.push(await startNatsServer({ config: clusterConfig(1, routePorts) }), await startNatsServer({ config: clusterConfig(2, routePorts) }));
    agent = await starting;

    nc = await connect({ servers: servers[2]!.url });
    expect(await new VirtClient(nc).call('forming', 'node.info', {}, { timeoutMs: 5000 })).toMatchObject({ node: 'forming' });
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info(EVENTS_STREAM)).config.name).toBe(EVENTS_STREAM);
    expect((await (await new Kvm(nc).open(NODES_BUCKET)).get('forming'))?.json()).toMatchObject({ node: 'forming' });
  });
});

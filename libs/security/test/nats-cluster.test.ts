import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Access, EVENTS_STREAM, Subjects } from '@virtbus/api-contract';
import { untilJetStreamReady } from '@virtbus/client';
import { freePort, hasBinaryOrSkip, startNatsServer, type NatsServerHandle } from '@virtbus/testing';
import { generateSecurityBundle, natsConnectionOptions, renderNatsServerConfig, type SecurityBundle } from '../src/index.js';

const canRun = hasBinaryOrSkip('nats-server') && hasBinaryOrSkip('openssl');

describe.runIf(canRun)('three nats-servers routed over TLS with the generated certificates', () => {
  let dir: string;
  let bundle: SecurityBundle;
  const servers: NatsServerHandle[] = [];
  const connections: NatsConnection[] = [];

  async function as(name: string, server: NatsServerHandle): Promise<NatsConnection> {
    const identity = bundle.identities.find((i) => i.name === name)!;
    const nc = await connect(
      natsConnectionOptions({ url: server.url, ca: bundle.ca.cert, cert: identity.files.cert, key: identity.files.key, inboxPrefix: `_INBOX.${name}` }),
    );
    connections.push(nc);
    return nc;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtbus-cluster-'));
    bundle = await generateSecurityBundle({ outDir: dir, nodes: ['a'] });
    const routePorts = [await freePort(), await freePort(), await freePort()];
    for (const [i, port] of routePorts.entries()) {
      const routes = routePorts.filter((other) => other !== port).map((other) => `nats-route://127.0.0.1:${other}`);
      const config = renderNatsServerConfig({ tls: bundle.tls, users: bundle.users, serverName: `nats-${i}`, cluster: { name: 'virtbus', listen: `127.0.0.1:${port}`, routes } });
      servers.push(await startNatsServer({ config }));
    }
  });

  afterAll(async () => {
    await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
    await Promise.all(servers.map((s) => s.stop()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('carries a request from the gateway on one server to the agent on the other, and still denies read-only writes', async () => {
    const agent = await as('agent-a', servers[0]!);
    for (const access of [Access.ReadOnly, Access.ReadWrite]) {
      const sub = agent.subscribe(Subjects.nodeAccess('a', access));
      void (async () => {
        for await (const msg of sub) msg.respond(msg.subject);
      })();
    }
    await agent.flush();
    const gateway = await as('gateway', servers[1]!);
    const subject = Subjects.request('a', Access.ReadWrite, 'domain.state');
    let reply: string | undefined;
    // routes need a moment to connect and exchange interest after start
    for (let attempt = 0; attempt < 50 && reply === undefined; attempt++) {
      reply = await gateway.request(subject, '', { timeout: 200 }).then((m) => m.string(), () => undefined);
      if (reply === undefined) await sleep(100);
    }
    expect(reply).toBe(subject);
    const readonly = await as('readonly', servers[1]!);
    await expect(readonly.request(subject, '', { timeout: 1000 })).rejects.toThrow(`Permissions Violation for Publish to "${subject}"`);
    expect((await readonly.request(Subjects.request('a', Access.ReadOnly, 'domain.list'), '', { timeout: 2000 })).string()).toBe('virt.v1.a.ro.domain.list');
  });

  it('runs a replicated VIRT_EVENTS the agent creates and the gateway reads from another server', async () => {
    const agent = await as('agent-a', servers[0]!);
    // right after start the servers may have no meta leader or not know their peers yet: the product's own wait
    const jsm = await untilJetStreamReady(`stream ${EVENTS_STREAM}`, async () => {
      const manager = await jetstreamManager(agent);
      await manager.streams.add({ name: EVENTS_STREAM, subjects: [Subjects.allEvents], num_replicas: 3 });
      return manager;
    });
    const ack = await jetstream(agent).publish(Subjects.domainEvent('a', 'uuid-1', 'started'), '{}');
    expect(ack.stream).toBe(EVENTS_STREAM);
    const info = await jsm.streams.info(EVENTS_STREAM);
    expect(info.cluster?.replicas).toHaveLength(2);
    const gateway = await as('gateway', servers[2]!);
    const consumer = await jetstream(gateway).consumers.get(EVENTS_STREAM, { filter_subjects: Subjects.nodeEvents('a') });
    expect((await consumer.next({ expires: 5000 }))?.subject).toBe(Subjects.domainEvent('a', 'uuid-1', 'started'));
  });
});

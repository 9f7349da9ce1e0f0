import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Access, Subjects } from '@virtbus/api-contract';
import { freePort, hasBinaryOrSkip, startNatsServer, type NatsServerHandle } from '@virtbus/testing';
import { generateSecurityBundle, natsConnectionOptions, renderNatsServerConfig, type SecurityBundle } from '../src/index.js';

const canRun = hasBinaryOrSkip('nats-server') && hasBinaryOrSkip('openssl');

describe.runIf(canRun)('two nats-servers routed over TLS with the generated certificates', () => {
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
    const routePorts = [await freePort(), await freePort()];
    for (const [i, port] of routePorts.entries()) {
      const other = routePorts[1 - i];
      const config = renderNatsServerConfig({
        tls: bundle.tls,
        users: bundle.users,
        serverName: `nats-${i}`,
        cluster: { name: 'virtbus', listen: `127.0.0.1:${port}`, routes: [`nats-route://127.0.0.1:${other}`] },
      });
      servers.push(await startNatsServer({ jetstream: false, config }));
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
});

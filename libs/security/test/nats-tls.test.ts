import { mkdtemp, rm } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, PermissionViolationError, type NatsConnection } from '@nats-io/transport-node';
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Svcm, type Service } from '@nats-io/services';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_SERVICE_NAME, Access, EVENTS_STREAM, NODES_BUCKET, Subjects } from '@virtbus/api-contract';
import { hasBinaryOrSkip, startNatsServer, type NatsServerHandle } from '@virtbus/testing';
import { DEFAULT_CLIENTS, generateSecurityBundle, natsConnectionOptions, type SecurityBundle } from '../src/index.js';

const canRun = hasBinaryOrSkip('nats-server') && hasBinaryOrSkip('openssl');

describe.runIf(canRun)('nats-server with the generated TLS config', () => {
  let dir: string;
  let bundle: SecurityBundle;
  let server: NatsServerHandle;
  const connections: NatsConnection[] = [];
  /** Permission errors the server sent to each connection, as the client reports them. */
  const violations = new Map<NatsConnection, PermissionViolationError[]>();
  let agentA: NatsConnection;
  let service: Service;
  const handled: string[] = [];

  async function as(name: string): Promise<NatsConnection> {
    const identity = bundle.identities.find((i) => i.name === name);
    if (!identity) throw new Error(`no identity ${name}`);
    const nc = await connect(
      natsConnectionOptions({ url: server.url, ca: bundle.ca.cert, cert: identity.files.cert, key: identity.files.key, inboxPrefix: `_INBOX.${name}`, name }),
    );
    connections.push(nc);
    const seen: PermissionViolationError[] = [];
    violations.set(nc, seen);
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === 'error' && status.error instanceof PermissionViolationError) seen.push(status.error);
      }
    })();
    return nc;
  }

  async function violationFor(nc: NatsConnection, subject: string): Promise<PermissionViolationError> {
    for (let i = 0; i < 100; i++) {
      const found = violations.get(nc)?.find((v) => v.subject === subject);
      if (found) return found;
      await sleep(20);
    }
    throw new Error(`no permissions violation for ${subject}`);
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtbus-sec-'));
    bundle = await generateSecurityBundle({ outDir: dir, nodes: ['a', 'b'], clients: [...DEFAULT_CLIENTS, { name: 'ro-a', kind: 'read-only', nodes: ['a'] }] });
    server = await startNatsServer({ config: bundle.configFragment });
    agentA = await as('agent-a');
    // the agent's start-up: create the stream and the bucket, then serve its verbs as the virt-agent service
    const jsm = await jetstreamManager(agentA);
    await jsm.streams.add({ name: EVENTS_STREAM, subjects: [Subjects.allEvents] });
    await new Kvm(agentA).create(NODES_BUCKET, { history: 1 });
    service = await new Svcm(agentA).add({ name: AGENT_SERVICE_NAME, version: '0.0.0', metadata: { node: 'a' } });
    for (const [name, access] of [
      ['domain_list', Access.ReadOnly],
      ['domain_state', Access.ReadWrite],
    ] as const) {
      const subject = Subjects.request('a', access, name.replace('_', '.'));
      service.addEndpoint(name, {
        subject,
        handler: (_error, msg) => {
          handled.push(subject);
          msg.respond(JSON.stringify({ result: subject }));
        },
      });
    }
    await agentA.flush();
  });

  afterAll(async () => {
    await service?.stop().catch(() => undefined);
    await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('maps each certificate to its identity (the subject DN nats-server derives)', () => {
    expect(bundle.identities.map((i) => i.natsUser)).toEqual([
      'CN=agent-a,OU=agent,O=virtbus',
      'CN=agent-b,OU=agent,O=virtbus',
      'CN=gateway,OU=gateway,O=virtbus',
      'CN=readonly,OU=read-only,O=virtbus',
      'CN=operator,OU=operator,O=virtbus',
      'CN=admin,OU=admin,O=virtbus',
      // the node scope is in the certificate, so the gateway sees it too
      'CN=ro-a,OU=nodes a,OU=read-only,O=virtbus',
    ]);
  });

  it('maps a node-limited certificate (two OUs) to its user: node a answers, node b is denied', async () => {
    const limited = await as('ro-a');
    const list = await limited.request(Subjects.request('a', Access.ReadOnly, 'domain.list'), '{}', { timeout: 2000 });
    expect(list.json()).toEqual({ result: 'virt.v1.a.ro.domain.list' });
    const other = Subjects.request('b', Access.ReadOnly, 'domain.list');
    await expect(limited.request(other, '{}', { timeout: 2000 })).rejects.toThrow(`Permissions Violation for Publish to "${other}"`);
  });

  it("denies agent-a a subscription to node b's requests (it cannot answer for b)", async () => {
    const sub = agentA.subscribe(Subjects.nodeAccess('b', Access.ReadWrite));
    const ended = (async () => {
      for await (const _ of sub) {
        // never delivered
      }
    })();
    const notDenied = sleep(3000).then(() => 'still subscribed');
    await expect(Promise.race([ended, notDenied])).rejects.toBeInstanceOf(PermissionViolationError);
    const violation = await violationFor(agentA, 'virt.v1.b.rw.>');
    expect(violation.operation).toBe('subscription');
    expect(violation.message).toBe('Permissions Violation for Subscription to "virt.v1.b.rw.>"');
  });

  it("denies agent-a publishing events for node b, while its own events reach the stream", async () => {
    const js = jetstream(agentA);
    const own = await js.publish(Subjects.domainEvent('a', 'uuid-1', 'started'), JSON.stringify({ type: 'started' }));
    expect(own.stream).toBe(EVENTS_STREAM);
    const forged = Subjects.domainEvent('b', 'uuid-1', 'stopped');
    await expect(js.publish(forged, '{}', { timeout: 2000 })).rejects.toThrow(`Permissions Violation for Publish to "${forged}"`);
    agentA.publish(Subjects.stats('b'), '{}');
    await violationFor(agentA, Subjects.stats('b'));
    const jsm = await jetstreamManager(agentA);
    const info = await jsm.streams.info(EVENTS_STREAM, { subjects_filter: '>' });
    expect(info.state.subjects).toEqual({ [Subjects.domainEvent('a', 'uuid-1', 'started')]: 1 });
  });

  it('lets agent-a write only its own node record and not widen the stream', async () => {
    const kv = await new Kvm(agentA).open(NODES_BUCKET);
    await kv.put('a', JSON.stringify({ node: 'a' }));
    expect((await kv.get('a'))?.json()).toEqual({ node: 'a' });
    await expect(kv.put('b', '{}', { timeout: 2000 } as never)).rejects.toThrow('Permissions Violation for Publish to "$KV.virt_nodes.b"');
    const jsm = await jetstreamManager(agentA);
    await expect(jsm.streams.update(EVENTS_STREAM, { subjects: [Subjects.allEvents, 'virt.v1.b.rw.>'] })).rejects.toThrow(
      'Permissions Violation for Publish to "$JS.API.STREAM.UPDATE.VIRT_EVENTS"',
    );
  });

  it('lets the read-only identity call a read verb but the server denies its start request', async () => {
    const readonly = await as('readonly');
    const list = await readonly.request(Subjects.request('a', Access.ReadOnly, 'domain.list'), '{}', { timeout: 2000 });
    expect(list.json()).toEqual({ result: 'virt.v1.a.ro.domain.list' });
    const before = handled.length;
    const start = Subjects.request('a', Access.ReadWrite, 'domain.state');
    await expect(readonly.request(start, JSON.stringify({ id: 'vm1', change: { state: 'running' } }), { timeout: 2000 })).rejects.toThrow(
      `Permissions Violation for Publish to "${start}"`,
    );
    expect((await violationFor(readonly, start)).operation).toBe('publish');
    await sleep(100);
    expect(handled.slice(before)).toEqual([]);
  });

  it('lets the gateway reach both verbs and discover the agent service', async () => {
    const gateway = await as('gateway');
    const reply = await gateway.request(Subjects.request('a', Access.ReadWrite, 'domain.state'), '{}', { timeout: 2000 });
    expect(reply.json()).toEqual({ result: 'virt.v1.a.rw.domain.state' });
    const infos = [];
    for await (const info of await new Svcm(gateway).client({ strategy: 'timer', maxWait: 500 }).info(AGENT_SERVICE_NAME)) infos.push(info);
    expect(infos.map((i) => i.metadata?.node)).toEqual(['a']);
  });

  it('lets the gateway read events through a JetStream consumer and node records from the bucket', async () => {
    const gateway = await as('gateway');
    const consumer = await jetstream(gateway).consumers.get(EVENTS_STREAM, { filter_subjects: Subjects.nodeEvents('a'), deliver_policy: DeliverPolicy.All });
    const msg = await consumer.next({ expires: 5000 });
    expect(msg?.subject).toBe(Subjects.domainEvent('a', 'uuid-1', 'started'));
    const kv = await new Kvm(gateway).open(NODES_BUCKET);
    expect((await kv.get('a'))?.json()).toEqual({ node: 'a' });
    const keys = [];
    for await (const key of await kv.keys()) keys.push(key);
    expect(keys).toEqual(['a']);
  });

  it('gives the read-only identity live events but no consumer API', async () => {
    const readonly = await as('readonly');
    const live = readonly.subscribe(Subjects.nodeEvents('a'), { max: 1 });
    await readonly.flush();
    await jetstream(agentA).publish(Subjects.domainEvent('a', 'uuid-2', 'stopped'), '{}');
    for await (const msg of live) expect(msg.subject).toBe(Subjects.domainEvent('a', 'uuid-2', 'stopped'));
    await expect(jetstream(readonly).consumers.get(EVENTS_STREAM, { filter_subjects: Subjects.nodeEvents('a') })).rejects.toThrow(/Permissions Violation/);
  });

  it('refuses a plaintext connection', async () => {
    const socket = tcpConnect(server.port, '127.0.0.1');
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString();
      if (received.startsWith('INFO ')) socket.write('CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n');
    });
    socket.on('error', () => undefined);
    // the server expects a TLS handshake after INFO: plaintext CONNECT bytes make it drop the connection
    await new Promise((resolve) => socket.once('close', resolve));
    expect(received).toMatch(/^INFO \{.*"tls_required":true/);
    expect(received.trim().split('\r\n')).toHaveLength(1);
    expect(received).not.toContain('PONG');
  });

  it('refuses TLS without a client certificate', async () => {
    await expect(connect({ servers: server.url, tls: { caFile: bundle.ca.cert }, reconnect: false, timeout: 3000 })).rejects.toThrow(/certificate|ECONNRESET/);
  });
});

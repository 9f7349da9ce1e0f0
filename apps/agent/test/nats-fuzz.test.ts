import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, OperationNames, Operations, Subjects, type OperationName } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { type AgentProcess, fuzzInBatches, hasBinaryOrSkip, type NatsServerHandle, spawnAgent, startNatsServer, tearDown } from '@virtbus/testing';

/** Malformed messages straight to every operation subject of a real agent: always a contract error, never a crash or a change. */
const canRun = hasBinaryOrSkip('nats-server');
const NODE = 'nf';
const BATCH = 50;
const RUNS = Number(process.env['VIRTBUS_NATS_FUZZ_RUNS'] ?? 44);
const ERROR_CODES = new Set<string>(ErrorCodes);
// nats-server's default max_payload is 1 MiB; stay just under it with the headers
const NEAR_MAX = 1024 * 1024 - 4096;

interface Message {
  operation: OperationName;
  kind: string;
  data: Uint8Array;
  headers?: Record<string, string>;
}

describe.runIf(canRun)('hostile NATS messages to the agent', () => {
  let dir: string;
  let nats: NatsServerHandle;
  let agent: AgentProcess;
  let nc: NatsConnection;
  let client: VirtClient;

  async function state(): Promise<unknown> {
    const { domains } = await client.call(NODE, 'domain.list', {});
    return domains.map((d) => ({ uuid: d.uuid, name: d.name, state: d.state, config: d.config })).sort((a, b) => a.uuid.localeCompare(b.uuid));
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtbus-natsfuzz-'));
    nats = await startNatsServer();
    agent = await spawnAgent({ node: NODE, natsUrl: nats.url, stateDir: join(dir, 'state'), env: { VIRTBUS_METRICS_ADDRESS: 'off' } });
    nc = await connect({ servers: nats.url });
    client = new VirtClient(nc);
    await client.call(NODE, 'domain.define', { name: 'keep', driver: 'test', vcpus: 1, memory: 64 });
    await client.call(NODE, 'domain.state', { id: 'keep', change: { action: 'start' } });
  }, 120_000);

  afterAll(() => tearDown(nc, agent, nats, dir));

  const encode = (text: string) => new TextEncoder().encode(text);
  const hostile = fc.constantFrom('../etc', '/etc/passwd', 'a\u0000b', 'a,b', 'a=b', 'a\nb', 'x'.repeat(70_000), '', 'keep,format=raw');
  const message: fc.Arbitrary<Message> = fc.tuple(
    fc.constantFrom(...OperationNames),
    fc.oneof(
      fc.constantFrom('{', '{"id":', '[1,2', 'null', 'true', '"str"', '1e999999', '{"id":"keep",}', '\u0000\u0001', '{"__proto__":{"polluted":1}}').map((text) => ({ kind: 'malformed-json', data: encode(text) })),
      fc.uint8Array({ minLength: 1, maxLength: 256 }).map((bytes) => ({ kind: 'binary', data: bytes })),
      fc.constantFrom(new Uint8Array([0xff, 0xfe, 0x7b, 0x7d]), new Uint8Array([0xc3, 0x28])).map((data) => ({ kind: 'bad-utf8', data })),
      fc.jsonValue({ maxDepth: 3 }).filter((v) => typeof v !== 'object' || v === null || Array.isArray(v) || Object.keys(v).length > 0).map((v) => ({ kind: 'wrong-type', data: encode(JSON.stringify(v)) })),
      fc.tuple(fc.constantFrom('id', 'change', 'config', 'exec', 'session', 'data', 'name', 'force'), fc.jsonValue({ maxDepth: 2 })).map(([key, value]) => ({
        kind: 'wrong-field',
        // keep is the live domain: every one of these bodies is invalid, so it must never change
        data: encode(JSON.stringify({ id: 'keep', [key]: value, unknownField: true })),
      })),
      hostile.map((id) => ({ kind: 'hostile-id', data: encode(JSON.stringify({ id, name: id, unknownField: 1 })) })),
      fc.constant({ kind: 'near-max-payload', data: encode(JSON.stringify({ id: 'keep', pad: 'x'.repeat(NEAR_MAX - 32) })) }),
      fc.constant({ kind: 'huge-array', data: encode(JSON.stringify({ id: 'keep', change: Array.from({ length: 50_000 }, (_, i) => i) })) }),
      fc.constant({ kind: 'deep-nesting', data: encode(`${'['.repeat(5000)}${']'.repeat(5000)}`) }),
    ),
    fc.option(fc.dictionary(fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,20}$/), fc.string({ maxLength: 100 }).map((s) => s.replace(/[\r\n]/g, '')), { maxKeys: 3 }), { nil: undefined }),
  ).map(([operation, body, headers]) => ({ operation, ...body, ...(headers ? { headers: { traceparent: 'garbage', ...headers } } : {}) }));

  it('answers ≥2,000 malformed messages with contract errors, keeps serving and changes nothing', async () => {
    const before = await state();
    const counts = { total: 0, byCode: {} as Record<string, number>, byKind: {} as Record<string, number> };
    const failures: string[] = [];

    async function send(m: Message): Promise<void> {
      const spec = Operations[m.operation];
      let hdrs;
      if (m.headers) {
        hdrs = natsHeaders();
        for (const [key, value] of Object.entries(m.headers)) hdrs.set(key, value);
      }
      const describe = () => `${m.kind} → ${m.operation} (${new TextDecoder().decode(m.data.slice(0, 120))})`;
      let text: string;
      try {
        const reply = await nc.request(Subjects.request(NODE, spec.access, m.operation), m.data, { timeout: 10_000, ...(hdrs ? { headers: hdrs } : {}) });
        text = new TextDecoder().decode(reply.data);
      } catch (error) {
        failures.push(`no reply (${(error as Error).message}): ${describe()}`);
        return;
      }
      counts.total++;
      counts.byKind[m.kind] = (counts.byKind[m.kind] ?? 0) + 1;
      let envelope: { error?: { code?: string; status?: number; message?: string }; result?: unknown };
      try {
        envelope = JSON.parse(text) as typeof envelope;
      } catch {
        failures.push(`reply is not JSON: ${describe()}: ${text.slice(0, 200)}`);
        return;
      }
      const code = envelope.error?.code ?? 'OK';
      counts.byCode[code] = (counts.byCode[code] ?? 0) + 1;
      if (envelope.error) {
        if (!ERROR_CODES.has(code) || typeof envelope.error.message !== 'string') failures.push(`bad error envelope: ${describe()}: ${text.slice(0, 200)}`);
        if ((envelope.error.status ?? 500) >= 500) failures.push(`server error ${code}: ${describe()}: ${text.slice(0, 300)}`);
      } else if (spec.access !== 'ro') {
        failures.push(`a malformed write was accepted: ${describe()}: ${text.slice(0, 200)}`);
      }
    }

    await fuzzInBatches(message, { batch: BATCH, runs: RUNS, reportChars: 1500 }, send, failures);
    console.log(`NATS fuzz: ${JSON.stringify(counts)}`);
    expect(failures).toEqual([]);
    expect(counts.total).toBe(RUNS * BATCH);
    expect((await client.call(NODE, 'node.info', {})).node).toBe(NODE);
    expect(await state()).toEqual(before);
    expect(agent.output()).not.toMatch(/"level":(50|60)/);
  }, 300_000);

  it('answers bad input to every peer verb with INVALID_ARG', async () => {
    const peerVerbs = OperationNames.filter((name) => Operations[name].access === 'peer');
    expect(peerVerbs).toEqual(['migration.check', 'migration.prepare', 'migration.finish', 'migration.abort']);
    const before = await state();
    const bodies = ['{not json', '[]', '{}', JSON.stringify({ migrationId: 'x', uuid: 'keep', unknownField: 1 }), JSON.stringify({ migrationId: '00000000-0000-4000-8000-000000000000', uuid: 'u', resume: 'yes' })];
    const codes: string[] = [];
    for (const name of peerVerbs) {
      for (const body of bodies) {
        const reply = await nc.request(Subjects.request(NODE, 'peer', name), encode(body), { timeout: 10_000 });
        const envelope = JSON.parse(new TextDecoder().decode(reply.data)) as { error?: { code?: string } };
        codes.push(`${name} ${body.slice(0, 20)}: ${envelope.error?.code ?? 'OK'}`);
      }
    }
    expect(codes.filter((line) => !line.endsWith(': INVALID_ARG'))).toEqual([]);
    expect(await state()).toEqual(before);
  });
});

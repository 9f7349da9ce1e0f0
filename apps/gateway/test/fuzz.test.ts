import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, OperationNames, Operations, type Domain, type DomainList, type OperationSpec } from '@virtbus/api-contract';
import { type AgentProcess, fuzzInBatches, hasBinaryOrSkip, type NatsServerHandle, spawnAgent, startNatsServer, tearDown } from '@virtbus/testing';
import { buildApp, type GatewayApp } from '../src/index.js';
import { arbitraryFor, fileDigests, HOSTILE_NAMES, HOSTILE_NUMBERS, HOSTILE_PATHS, type JsonSchema } from './fuzz-support.js';

/**
 * Hostile HTTP input against every route of the OpenAPI document, through a real agent process.
 * State invariance: rejected requests may not change anything. Valid generated requests either target
 * domains that do not exist (update, state, exec, undefine → NO_DOMAIN), or define a new domain that the
 * test undefines at once; the long-lived domain `keep` (running) only ever receives bodies that are invalid.
 */
const canRun = hasBinaryOrSkip('nats-server');
const NODE = 'fz';
const BATCH = 40;
const RUNS = Number(process.env['VIRTBUS_FUZZ_RUNS'] ?? 260);

interface Route {
  method: string;
  path: string;
  key: string;
  params: Record<string, JsonSchema>;
  query?: JsonSchema;
  body?: JsonSchema;
  mutating: boolean;
  /** A driver-specific call (libvirt's qemu-monitor-command and the like): 501 OPERATION_UNSUPPORTED on the test driver's domains is its contract. */
  driverSpecific: boolean;
}

interface FuzzRequest {
  route: string;
  driverSpecific: boolean;
  kind: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  payload?: string | Buffer;
  /** The only acceptable answer. */
  expectCode?: string;
  targetsKeep?: boolean;
}

const ERROR_CODES = new Set<string>(ErrorCodes);
/** Operations the contract marks as served by some drivers only (this node has the test driver alone): 501 OPERATION_UNSUPPORTED is their answer. */
const DRIVER_SPECIFIC = new Set(OperationNames.flatMap((name) => {
  const spec: OperationSpec = Operations[name];
  return spec.drivers && !spec.drivers.includes('test') && spec.http ? [spec.http.operationId] : [];
}));

describe.runIf(canRun)('hostile HTTP input (fast-check, every OpenAPI route)', () => {
  let dir: string;
  let nats: NatsServerHandle;
  let agent: AgentProcess;
  let nc: NatsConnection;
  let app: GatewayApp;
  let keep: Domain;
  let routes: Route[];
  let document: { paths: Record<string, Record<string, Record<string, unknown>>>; components?: { schemas?: Record<string, JsonSchema> } };

  async function snapshot(): Promise<{ domains: unknown; files: Record<string, string> }> {
    const list = await app.inject({ method: 'GET', url: `/v1/nodes/${NODE}/domains` });
    const domains = (list.json() as DomainList).domains.map((d) => ({ uuid: d.uuid, name: d.name, state: d.state, config: d.config })).sort((a, b) => a.uuid.localeCompare(b.uuid));
    // the event log holds the define/undefine events of valid requests; everything else must be byte-identical
    const files = await fileDigests(join(dir, 'state'), (rel) => rel === 'events');
    return { domains, files };
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtbus-fuzz-'));
    nats = await startNatsServer();
    agent = await spawnAgent({ node: NODE, natsUrl: nats.url, stateDir: join(dir, 'state'), env: { VIRTBUS_METRICS_ADDRESS: 'off', VIRTBUS_STATS_INTERVAL: '0' } });
    nc = await connect({ servers: nats.url });
    app = await buildApp({ nc, discoveryWaitMs: 50, validateReplies: true });
    await app.ready();
    const created = await app.inject({ method: 'POST', url: `/v1/nodes/${NODE}/domains`, payload: { name: 'keep', driver: 'test', vcpus: 1, memory: 64 } });
    keep = created.json() as Domain;
    await app.inject({ method: 'PUT', url: `/v1/nodes/${NODE}/domains/keep/state`, payload: { action: 'start' } });
    document = app.swagger() as unknown as typeof document;
    routes = [];
    for (const [path, methods] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(methods)) {
        const parameters = (operation['parameters'] ?? []) as { in: string; name: string; schema: JsonSchema; required?: boolean }[];
        const params = Object.fromEntries(parameters.filter((p) => p.in === 'path').map((p) => [p.name, p.schema]));
        const queryParams = parameters.filter((p) => p.in === 'query');
        const query: JsonSchema | undefined = queryParams.length
          ? { type: 'object', properties: Object.fromEntries(queryParams.map((p) => [p.name, p.schema])), required: queryParams.filter((p) => p.required).map((p) => p.name) }
          : undefined;
        const body = (operation['requestBody'] as { content?: Record<string, { schema: JsonSchema }> } | undefined)?.content?.['application/json']?.schema;
        const upper = method.toUpperCase();
        routes.push({ method: upper, path, key: `${upper} ${path}`, params, query, body, mutating: upper !== 'GET' && upper !== 'HEAD', driverSpecific: DRIVER_SPECIFIC.has(String(operation['operationId'])) });
      }
    }
  }, 120_000);

  afterAll(() => tearDown(app, nc, agent, nats, dir));

  const resolve = (ref: string): JsonSchema => {
    const name = ref.replace(/^#\/components\/schemas\//, '');
    const schema = document.components?.schemas?.[name];
    if (!schema) throw new Error(`unresolved ${ref}`);
    return schema;
  };

  function url(route: Route, params: Record<string, string>, query: Record<string, unknown> | string | undefined): string {
    const path = route.path.replace(/\{(\w+)\}/g, (_m, name: string) => encodeURIComponent(params[name] ?? 'x'));
    if (query === undefined) return path;
    if (typeof query === 'string') return `${path}?${query}`;
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) search.append(key, typeof value === 'string' ? value : JSON.stringify(value));
    const text = search.toString();
    return text ? `${path}?${text}` : path;
  }

  function requestArbitrary(route: Route): fc.Arbitrary<FuzzRequest> {
    const idSchema = route.params['id'];
    const otherId = idSchema ? arbitraryFor(idSchema, resolve).filter((id) => id !== 'keep' && id !== keep.uuid) : fc.constant('x');
    const params = fc.record({
      node: fc.oneof({ weight: 9, arbitrary: fc.constant(NODE) }, { weight: 1, arbitrary: arbitraryFor(route.params['node'] ?? { type: 'string' }, resolve) }),
      id: route.mutating ? otherId : fc.oneof(fc.constant('keep'), fc.constant(keep.uuid), otherId),
    }) as fc.Arbitrary<Record<string, string>>;
    // generated disks and NICs name files, pools and networks that do not exist: half of the defines keep only what the test driver accepts
    const isDefine = route.key === 'POST /v1/nodes/{node}/domains';
    const body = route.body
      ? fc.tuple(arbitraryFor(route.body, resolve), fc.boolean()).map(([b, minimal]) => {
          if (!isDefine) return b;
          const { name, vcpus, memory } = b as { name: string; vcpus?: number; memory?: number };
          return minimal ? { name, driver: 'test', ...(vcpus ? { vcpus } : {}), ...(memory ? { memory } : {}) } : { ...(b as object), driver: 'test' };
        })
      : fc.constant(undefined);
    // a valid events query would open an endless stream: those requests always carry an unknown parameter
    const query = route.query ? (arbitraryFor(route.query, resolve) as fc.Arbitrary<Record<string, unknown>>) : fc.constant(undefined);
    const streaming = route.path === '/v1/events';
    const base = fc.record({ params, body, query }).map(({ params: p, body: b, query: q }) => ({
      p,
      b,
      q: streaming ? { ...(q ?? {}), bogus: '1' } : q,
    }));
    const json = (value: unknown) => ({ headers: { 'content-type': 'application/json' }, payload: JSON.stringify(value) });
    const make = (kind: string, p: Record<string, string>, q: Record<string, unknown> | string | undefined, extra: Partial<FuzzRequest> = {}): FuzzRequest => ({
      route: route.key,
      driverSpecific: route.driverSpecific,
      kind,
      method: route.method,
      url: url(route, p, q),
      headers: {},
      ...extra,
    });
    const withBody = (b: unknown) => (route.body && b !== undefined ? json(b) : {});
    const hasId = 'id' in route.params;
    const keepTarget = (p: Record<string, string>, useKeep: boolean) => (hasId && useKeep ? { ...p, id: 'keep' } : p);

    const kinds: fc.Arbitrary<FuzzRequest>[] = [
      base.map(({ p, b, q }) => make('valid', p, q, withBody(b))),
      // another method on a read route's path can be a real write (GET → POST …/managed-save): only other ids get those
      fc.tuple(base, fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH'), otherId).map(([{ p, q }, method, other]) => ({
        ...make('method', method === 'GET' || !hasId ? p : { ...p, id: String(other) }, q),
        method,
      })),
      fc.tuple(base, fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 20 }), { maxKeys: 3 }), fc.string({ maxLength: 300 })).map(([{ p, b }, garbage, raw]) =>
        make('query', p, streaming ? `${new URLSearchParams(garbage).toString()}&bogus=1` : raw.length % 2 ? garbage : raw, withBody(b)),
      ),
      fc.tuple(base, fc.constantFrom('authorization', 'traceparent', 'last-event-id', 'accept', 'x-forwarded-for', 'content-length', 'connection'), fc.string({ maxLength: 200 })).map(
        ([{ p, b, q }, header, value]) => {
          const request = make(`header-${header}`, p, q, withBody(b));
          const clean = value.replace(/[^\x20-\x7e]/g, '');
          if (header !== 'content-length') request.headers = { ...request.headers, [header]: clean };
          return request;
        },
      ),
    ];
    if (Object.keys(route.params).length > 0) {
      kinds.push(
        fc.tuple(base, fc.constantFrom(...Object.keys(route.params)), fc.constantFrom(...HOSTILE_NAMES)).map(([{ p, b, q }, name, hostile]) =>
          make(`param-${name}`, { ...p, [name]: hostile }, q, withBody(b)),
        ),
      );
    }
    if (route.body) {
      const bodySchema = route.body.$ref ? resolve(route.body.$ref) : route.body;
      const props = Object.keys(bodySchema.properties ?? {});
      // a "wrong type" must really be wrong: the JSON type of the value differs from every type the field allows
      const jsonType = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'number' ? 'number' : typeof v);
      const couldBeValid = (schema: JsonSchema | undefined, value: unknown): boolean => {
        if (!schema) return false;
        const resolved = schema.$ref ? resolve(schema.$ref) : schema;
        const union = resolved.anyOf ?? resolved.oneOf;
        if (union) return union.some((s) => couldBeValid(s, value));
        if (resolved.enum) return resolved.enum.some((e) => jsonType(e) === jsonType(value));
        const types = (Array.isArray(resolved.type) ? resolved.type : [resolved.type]).map((t) => (t === 'integer' ? 'number' : t));
        return types.includes(undefined) || types.includes(jsonType(value));
      };
      const wrongValues = fc.oneof(
        fc.constant(null),
        fc.integer(),
        fc.string({ maxLength: 5 }),
        fc.constant([]),
        fc.constant({}),
        fc.constant(true),
        fc.constant('x'.repeat(200_000)),
        fc.constant({ nested: { deeper: [1, 2, { x: 'y' }] } }),
      );
      const invalidBodies: fc.Arbitrary<[string, unknown]>[] = [
        fc
          .tuple(base, fc.constantFrom(...(props.length ? props : ['x'])), wrongValues)
          .filter(([, key, value]) => !couldBeValid(bodySchema.properties?.[key], value))
          .map(([{ b }, key, value]) => ['type', { ...(b as object), [key]: value }] as [string, unknown]),
        fc.tuple(base, fc.string({ minLength: 1, maxLength: 20 })).filter(([, key]) => !props.includes(key)).map(([{ b }, key]) => ['unknown-field', { ...(b as object), [key]: 1 }] as [string, unknown]),
        fc.constantFrom<[string, unknown]>(['not-object', []], ['not-object', 'str'], ['not-object', 42], ['not-object', null]),
      ];
      if (route.key === 'POST /v1/nodes/{node}/domains' || route.key === 'PUT /v1/nodes/{node}/domains/{id}') {
        const define = route.key.startsWith('POST');
        const names = fc.constantFrom(...HOSTILE_NAMES);
        const paths = fc.constantFrom(...HOSTILE_PATHS);
        const baseBody = base.map(({ b }) => b as Record<string, unknown>);
        invalidBodies.push(
          fc.tuple(baseBody, names, fc.constantFrom('nic', 'pool', 'volume', ...(define ? ['name', 'name', 'name'] : []))).map(([b, name, where]) => {
            const patch =
              where === 'name'
                ? { name }
                : where === 'nic'
                  ? { nics: [{ type: 'network', source: name }] }
                  : { disks: [{ source: where === 'pool' ? { pool: name, volume: 'v1' } : { pool: 'p1', volume: name } }] };
            return ['inject-name', { ...b, ...patch }] as [string, unknown];
          }),
          fc.tuple(baseBody, paths, fc.constantFrom('disk', 'kernel', 'initrd', 'rootfs')).map(([b, path, where]) => {
            const patch =
              where === 'disk' ? { disks: [{ source: { path } }] } : where === 'rootfs' ? { container: { rootfs: { path } } } : { os: { [where]: path } };
            return ['inject-path', { ...b, ...patch }] as [string, unknown];
          }),
          fc.tuple(baseBody, fc.constantFrom(...HOSTILE_NUMBERS, 257, 4_194_305), fc.constantFrom('vcpus', 'memory')).map(
            ([b, n, key]) => ['number', { ...b, [key]: key === 'memory' && n === 257 ? 0 : n }] as [string, unknown],
          ),
        );
      }
      const invalid = fc.oneof(...invalidBodies);
      kinds.push(
        fc.tuple(base, invalid, fc.boolean()).map(([{ p, q }, [kind, b], useKeep]) => ({
          ...make(kind, keepTarget(p, useKeep), q, json(b)),
          targetsKeep: hasId && useKeep,
          ...(kind.startsWith('inject') || kind === 'number' ? { expectCode: 'INVALID_ARG' } : {}),
        })),
        fc.tuple(
          base,
          fc.oneof(
            fc.constantFrom('{', '{"a":', '{"name": "x",}', 'nul\u0000l', '1e999999', '{"__proto__": {"x": 1}}', '{"constructor": {"prototype": {"x": 1}}}', ''),
            fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
            fc.string({ maxLength: 50 }),
          ),
          fc.boolean(),
        ).map(([{ p, q }, raw, useKeep]) => ({
          ...make('raw-body', keepTarget(p, useKeep), q, { headers: { 'content-type': 'application/json' }, payload: raw }),
          targetsKeep: hasId && useKeep,
        })),
        fc.tuple(base, fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'garbage', 'application/octet-stream')).map(
          ([{ p, b, q }, type]) => make('content-type', p, q, { headers: { 'content-type': type }, payload: JSON.stringify(b) }),
        ),
        base.map(({ p, q }) => ({
          ...make('huge-body', keepTarget(p, true), q, { headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ pad: 'x'.repeat(1024 * 1024 + 16) }) }),
          targetsKeep: hasId,
          expectCode: 'PAYLOAD_TOO_LARGE',
        })),
      );
    }
    return fc.oneof(...kinds);
  }

  it('answers ≥10,000 generated and mutated requests without a 5xx, with contract error bodies, and leaves the state as it was', async () => {
    const before = await snapshot();
    expect(before.domains).toHaveLength(1);
    const counts = { total: 0, byStatus: {} as Record<string, number>, byKind: {} as Record<string, number>, byRoute: {} as Record<string, number>, undone: 0 };
    const failures: string[] = [];
    const arbitrary = fc.oneof(...routes.map((route) => requestArbitrary(route)));

    async function run(request: FuzzRequest): Promise<void> {
      const pending = app.inject({
        method: request.method as 'GET',
        url: request.url,
        headers: request.headers,
        ...(request.payload !== undefined ? { payload: request.payload } : {}),
      });
      const response = await Promise.race([pending, sleep(30_000).then(() => undefined)]);
      if (!response) {
        failures.push(`no answer within 30 s: ${request.kind}: ${request.method} ${request.url.slice(0, 200)}`);
        return;
      }
      const status = response.statusCode;
      counts.total++;
      counts.byStatus[status] = (counts.byStatus[status] ?? 0) + 1;
      counts.byKind[request.kind] = (counts.byKind[request.kind] ?? 0) + 1;
      counts.byRoute[request.route] = (counts.byRoute[request.route] ?? 0) + 1;
      const describe = () => `${request.kind}: ${request.method} ${request.url.slice(0, 200)} ${String(request.payload ?? '').slice(0, 200)} → ${status} ${response.body.slice(0, 300)}`;
      const unsupportedHere = status === 501 && request.driverSpecific && response.json<{ code?: string }>().code === 'OPERATION_UNSUPPORTED';
      if (status >= 500 && !unsupportedHere) failures.push(`5xx ${describe()}`);
      if (status >= 400) {
        let body: { code?: unknown; status?: unknown; message?: unknown } | undefined;
        try {
          body = response.json();
        } catch {
          failures.push(`non-JSON error ${describe()}`);
        }
        if (body && (!ERROR_CODES.has(String(body.code)) || body.status !== status || typeof body.message !== 'string')) failures.push(`bad error body ${describe()}`);
        if (request.expectCode && body?.code !== request.expectCode) failures.push(`expected ${request.expectCode}: ${describe()}`);
      } else {
        if (request.expectCode) failures.push(`expected ${request.expectCode}: ${describe()}`);
        if (request.targetsKeep) failures.push(`accepted an invalid request on keep: ${describe()}`);
        if (request.method === 'POST' && status === 201) {
          // a valid define: remove what it created (the collection URL plus the new object's uuid or name)
          const created = response.json() as { uuid?: string; name?: string };
          const collection = request.url.split('?')[0]!;
          let undoUrl = `${collection}/${encodeURIComponent(created.uuid ?? created.name ?? '')}`;
          let undo = await app.inject({ method: 'DELETE', url: undoUrl });
          // objects addressed by name only (storage pools, rule sets) also carry a uuid
          if (undo.statusCode === 404 && created.uuid && created.name) {
            undoUrl = `${collection}/${encodeURIComponent(created.name)}`;
            undo = await app.inject({ method: 'DELETE', url: undoUrl });
          }
          if (undo.statusCode >= 300) failures.push(`could not undo ${describe()}: DELETE ${undoUrl} ${undo.statusCode} ${undo.body}`);
          else counts.undone++;
        }
      }
    }

    await fuzzInBatches(arbitrary, { batch: BATCH, runs: RUNS, reportChars: 2000 }, run, failures);

    console.log(`HTTP fuzz: ${JSON.stringify(counts)}`);
    expect(failures).toEqual([]);
    expect(counts.total).toBeGreaterThanOrEqual(RUNS * BATCH);
    // valid defines did reach the agent and were undone
    expect(counts.undone).toBeGreaterThan(0);
    for (const route of routes) expect(counts.byRoute[route.key] ?? 0, route.key).toBeGreaterThan(0);
    // still serving, and nothing changed but what valid requests did and undid
    expect((await app.inject({ method: 'GET', url: `/v1/nodes/${NODE}` })).statusCode).toBe(200);
    const after = await snapshot();
    expect(after.domains).toEqual(before.domains);
    expect(after.files).toEqual(before.files);
    expect(agent.output()).not.toMatch(/"level":(50|60)/);
  }, 600_000);

  it('rejects every escaping name, option-injecting path and oversized number with INVALID_ARG (define and update of a live domain)', async () => {
    const before = await snapshot();
    const cases: { where: string; body: Record<string, unknown> }[] = [];
    for (const name of HOSTILE_NAMES) {
      cases.push({ where: `name ${JSON.stringify(name.slice(0, 20))}`, body: { name } });
      cases.push({ where: `nic source ${JSON.stringify(name.slice(0, 20))}`, body: { nics: [{ type: 'network', source: name }] } });
      cases.push({ where: `pool ${JSON.stringify(name.slice(0, 20))}`, body: { disks: [{ source: { pool: name, volume: 'v1' } }] } });
      cases.push({ where: `volume ${JSON.stringify(name.slice(0, 20))}`, body: { disks: [{ source: { pool: 'p1', volume: name } }] } });
    }
    for (const path of HOSTILE_PATHS) {
      const short = JSON.stringify(path.slice(0, 30));
      cases.push({ where: `disk ${short}`, body: { disks: [{ source: { path } }] } });
      cases.push({ where: `kernel ${short}`, body: { os: { kernel: path } } });
      cases.push({ where: `initrd ${short}`, body: { os: { initrd: path } } });
      cases.push({ where: `rootfs ${short}`, body: { container: { rootfs: { path } } } });
    }
    for (const n of [...HOSTILE_NUMBERS.filter((x) => x !== 2 ** 31 - 1), 257, 4_194_305]) {
      if (n !== 0 && n >= 1 && n <= 256 && Number.isInteger(n)) continue;
      cases.push({ where: `vcpus ${n}`, body: { vcpus: n } });
      if (!(Number.isInteger(n) && n >= 1 && n <= 4_194_304)) cases.push({ where: `memory ${n}`, body: { memory: n } });
    }
    const wrong: string[] = [];
    let sent = 0;
    for (const { where, body } of cases) {
      const targets = [
        { method: 'POST' as const, url: `/v1/nodes/${NODE}/domains`, payload: { name: 'inj', driver: 'test', ...body } },
        ...(body['name'] === undefined ? [{ method: 'PUT' as const, url: `/v1/nodes/${NODE}/domains/keep`, payload: body }] : []),
      ];
      for (const target of targets) {
        const response = await app.inject(target);
        sent++;
        if (response.statusCode !== 400 || (response.json() as { code: string }).code !== 'INVALID_ARG') wrong.push(`${target.method} ${where} → ${response.statusCode} ${response.body.slice(0, 200)}`);
      }
    }
    for (const name of HOSTILE_NAMES) {
      for (const url of [`/v1/nodes/${encodeURIComponent(name)}/domains`, `/v1/nodes/${NODE}/domains/${encodeURIComponent(name)}`]) {
        const response = await app.inject({ method: 'GET', url });
        sent++;
        const code = (response.json() as { code: string }).code;
        // `.`, `..`, `/` and the empty string change the path itself: no route matches, or `/v1/nodes/../domains`
        // becomes the fleet-wide `/v1/domains` (its reply has `asOf`)
        const routeChanged = ['.', '..', ''].includes(name) || name.includes('/');
        const fleetList = name === '..' && url.endsWith('/domains') && response.statusCode === 200 && 'asOf' in (response.json() as object);
        if (!(code === 'INVALID_ARG' || (routeChanged && (response.statusCode === 404 || fleetList)))) wrong.push(`GET ${url.slice(0, 80)} → ${response.statusCode} ${response.body.slice(0, 200)}`);
      }
    }
    console.log(`injection cases: ${sent} requests, ${wrong.length} not INVALID_ARG`);
    expect(wrong).toEqual([]);
    expect(await snapshot()).toEqual(before);
  });
});

import { describe, expect, it } from 'vitest';
import { OperationNames, Operations } from './api.js';
import { httpPath, operationPath, replyWaitMs, type OperationSpec } from './operation-spec.js';

const specs = OperationNames.map((name) => [name, Operations[name] as OperationSpec] as const);
const fieldsOf = (spec: OperationSpec) => Object.keys((spec.request as { properties?: object }).properties ?? {});

describe('the operation table', () => {
  it('binds each HTTP path parameter, body and query field to a request field', () => {
    for (const [name, spec] of specs) {
      if (!spec.http) continue;
      const fields = fieldsOf(spec);
      for (const [, param] of httpPath(spec.http).matchAll(/:(\w+)/g)) {
        if (param !== 'node') expect(fields, `${name} :${param}`).toContain(spec.http.params?.[param!] ?? param);
      }
      for (const part of [spec.http.body, spec.http.query]) if (typeof part === 'string') expect(fields, `${name} ${part}`).toContain(part);
    }
  });

  it('gives every HTTP operation its own operationId and method + path', () => {
    const bound = specs.filter(([, spec]) => spec.http).map(([, spec]) => spec.http!);
    expect(new Set(bound.map((http) => http.operationId)).size).toBe(bound.length);
    expect(new Set(bound.map((http) => `${http.method} ${httpPath(http)}`)).size).toBe(bound.length);
  });

  it('lets a driver-specific operation answer OPERATION_UNSUPPORTED, and marks the ones the hypervisor verbs and libvirt verbs are', () => {
    const marked = specs.filter(([, spec]) => spec.drivers);
    for (const [name, spec] of marked) {
      expect(spec.errors, name).toContain('OPERATION_UNSUPPORTED');
      expect(new Set(spec.drivers).size, name).toBe(spec.drivers!.length);
    }
    expect(marked.map(([name]) => name)).toEqual(expect.arrayContaining(['domain.xml', 'domain.import', 'domain.qemu.monitor', 'domain.lxc.enter']));
  });

  it('reads a wait from the request, never below the minimum', () => {
    const wait = { wait: { seconds: 30, field: 'change.timeout', marginSeconds: 5 } };
    expect(replyWaitMs(wait, { change: { timeout: 100 } }, 10_000)).toBe(105_000);
    expect(replyWaitMs(wait, { change: {} }, 10_000)).toBe(35_000);
    expect(replyWaitMs(wait, { change: { timeout: 1 } }, 10_000)).toBe(10_000);
    expect(replyWaitMs({}, {}, 10_000)).toBe(10_000);
  });

  it('fills and encodes path parameters', () => {
    expect(operationPath({ path: '/domains/:id' }, { node: 'n1', id: 'a b/c' })).toBe('/v1/nodes/n1/domains/a%20b%2Fc');
    expect(() => operationPath({ path: '' }, {})).toThrow(/:node/);
  });
});

/** Keywords whose values are data, not schemas (a `default` inside them is a value). */
const DATA_KEYWORDS = new Set(['enum', 'const', 'examples', 'default']);
/** Keywords whose keys are names and whose values are schemas (a property may be called `default`). */
const NAMED_SCHEMAS = new Set(['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas']);

/** JSON paths of every `default` keyword in a schema and its subschemas. */
function defaultsIn(schema: unknown, path = '#'): string[] {
  if (Array.isArray(schema)) return schema.flatMap((item, index) => defaultsIn(item, `${path}/${index}`));
  if (typeof schema !== 'object' || schema === null) return [];
  const found = Object.hasOwn(schema, 'default') ? [path] : [];
  for (const [key, value] of Object.entries(schema)) {
    if (DATA_KEYWORDS.has(key)) continue;
    if (NAMED_SCHEMAS.has(key) && typeof value === 'object' && value !== null) {
      for (const [name, sub] of Object.entries(value)) found.push(...defaultsIn(sub, `${path}/${key}/${name}`));
    } else found.push(...defaultsIn(value, `${path}/${key}`));
  }
  return found;
}

describe('response schemas', () => {
  it('carry no default keyword: fast-json-stringify would write it into every reply, unseen by the page budget', () => {
    expect(defaultsIn({ properties: { default: { type: 'boolean' }, a: { type: 'string', default: 'x' } } })).toEqual(['#/properties/a']);
    const found = specs.flatMap(([name, spec]) => defaultsIn(spec.response).map((path) => `${name} ${path}`));
    expect(found).toEqual([]);
  });
});

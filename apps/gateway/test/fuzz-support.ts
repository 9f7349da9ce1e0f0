import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import fc from 'fast-check';

/** A JSON schema as the OpenAPI document carries it (the subset our contract uses). */
export interface JsonSchema {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  patternProperties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
}

/** Arbitrary values that satisfy a schema (best effort: patterns through fc.stringMatching, sizes kept small). */
export function arbitraryFor(schema: JsonSchema, resolve: (ref: string) => JsonSchema, depth = 0): fc.Arbitrary<unknown> {
  if (schema.$ref) return arbitraryFor(resolve(schema.$ref), resolve, depth);
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const union = schema.anyOf ?? schema.oneOf;
  if (union) return fc.oneof(...union.map((s) => arbitraryFor(s, resolve, depth)));
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'string': {
      if (schema.format === 'uuid') return fc.uuid();
      const min = schema.minLength ?? 0;
      const max = Math.min(schema.maxLength ?? 40, 200);
      if (schema.pattern) {
        try {
          return fc.stringMatching(new RegExp(schema.pattern)).filter((s) => s.length >= min && s.length <= (schema.maxLength ?? Infinity));
        } catch {
          // a pattern fast-check cannot generate from: plain strings (may be rejected, which is fine)
        }
      }
      return fc.string({ minLength: min, maxLength: Math.max(min, max) });
    }
    case 'integer':
      return fc.integer({ min: schema.minimum ?? -1000, max: schema.maximum ?? 1_000_000 });
    case 'number':
      return fc.double({ min: schema.minimum ?? -1e6, max: schema.maximum ?? 1e6, noNaN: true, noDefaultInfinity: true });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array': {
      if (depth > 3 || !schema.items) return fc.constant([]);
      return fc.array(arbitraryFor(schema.items, resolve, depth + 1), { minLength: schema.minItems ?? 0, maxLength: Math.min(schema.maxItems ?? 3, 3) });
    }
    case 'object': {
      if (schema.patternProperties) {
        const [pattern, value] = Object.entries(schema.patternProperties)[0]!;
        return fc.dictionary(fc.stringMatching(new RegExp(pattern)), arbitraryFor(value, resolve, depth + 1), { maxKeys: 3 });
      }
      const properties = schema.properties ?? {};
      const record = Object.fromEntries(Object.entries(properties).map(([key, value]) => [key, arbitraryFor(value, resolve, depth + 1)]));
      return fc.record(record, { requiredKeys: schema.required ?? [] });
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** Every file under a directory with the sha256 of its content (the agent's durable state). */
export async function fileDigests(dir: string, skip: (path: string) => boolean): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(current: string): Promise<void> {
    for (const entry of await readdir(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      const rel = relative(dir, path);
      if (skip(rel)) continue;
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) out[rel] = createHash('sha256').update(await readFile(path)).digest('hex');
      else out[rel] = entry.isSocket() ? 'socket' : 'other';
    }
  }
  await walk(dir);
  return out;
}

/** Names and paths that try to escape, inject QEMU options or overflow: every one must be INVALID_ARG. */
export const HOSTILE_NAMES = [
  '../etc',
  '..',
  '.',
  '/etc/passwd',
  'a/b',
  'a\u0000b',
  'nul\u0000',
  'a,b',
  'file=/etc/shadow',
  'a=b',
  'a\nb',
  'a\rb',
  'tab\there',
  ' lead',
  'x'.repeat(65),
  'x'.repeat(100_000),
  'a..b',
  '-rf',
  '.hidden',
  'é',
  'a b',
  'a;b',
  '$(id)',
  '`id`',
  'a.b.>',
  '*',
  '',
];
export const HOSTILE_PATHS = [
  'relative/disk.qcow2',
  '../disk.qcow2',
  '/var/lib/../../etc/shadow',
  '/a/..',
  '/a\u0000b',
  '/a,b',
  '/a,format=raw',
  '/a=b',
  '/disk.qcow2,file.driver=host_device',
  '/a\nb',
  '/a\u007f',
  `/${'x'.repeat(5000)}`,
  '',
  '~/disk',
];
export const HOSTILE_NUMBERS = [-1, 0, 1.5, 2 ** 31, 2 ** 53 + 2, 1e300, -1e300, Number.MAX_SAFE_INTEGER];

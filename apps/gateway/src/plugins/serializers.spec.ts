import { describe, expect, it } from 'vitest';
import { cachedSerializerFactory } from './serializers.js';

const shared = { Item: { $id: 'Item', type: 'object', properties: { name: { type: 'string' } } } };
const route = (schema: unknown, url: string) => ({ method: 'GET', url, httpStatus: '200', schema });

describe('cachedSerializerFactory', () => {
  it('builds one serializer per distinct response schema and shared-schema set, each writing only its schema', () => {
    const compile = cachedSerializerFactory(shared, {});
    const list = { type: 'object', properties: { items: { type: 'array', items: { $ref: 'Item#' } } } };
    const first = compile(route(list, '/a'));
    // the same schema on another route (a fresh but equal object) gets the same serializer
    expect(compile(route(structuredClone(list), '/b'))).toBe(first);
    expect(first({ items: [{ name: 'x', secret: 1 }], extra: true })).toBe('{"items":[{"name":"x"}]}');
    const other = compile(route({ type: 'object', properties: { count: { type: 'integer' } } }, '/c'));
    expect(other).not.toBe(first);
    expect(other({ count: 2, items: [] })).toBe('{"count":2}');
    // another app with the same shared schemas reuses the serializers; other shared schemas do not
    expect(cachedSerializerFactory(structuredClone(shared), {})(route(list, '/a'))).toBe(first);
    const narrower = { Item: { $id: 'Item', type: 'object', properties: { id: { type: 'integer' } } } };
    expect(cachedSerializerFactory(narrower, {})(route(list, '/a'))({ items: [{ id: 1, name: 'x' }] })).toBe('{"items":[{"id":1}]}');
  });
});

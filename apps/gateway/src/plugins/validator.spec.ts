import Type from 'typebox';
import { describe, expect, it } from 'vitest';
import { validatorCompiler } from './validator.js';

const Query = Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1 })), live: Type.Optional(Type.Boolean()) }, { additionalProperties: false });
const validate = (httpPart: string, value: unknown) => (validatorCompiler({ schema: Query, httpPart, method: 'GET', url: '/x' }) as (value: unknown) => { value?: unknown; error?: unknown })(value);

describe('validatorCompiler', () => {
  it('converts query strings to the schema types', () => {
    expect(validate('querystring', { limit: '1000', live: 'true' })).toEqual({ value: { limit: 1000, live: true } });
  });
  it('takes a value that already passes as it is', () => {
    const value = { limit: 5 };
    expect(validate('querystring', value).value).toBe(value);
  });
  it('refuses what does not convert, and never converts a body', () => {
    expect(validate('querystring', { limit: 'many' }).error).toBeDefined();
    expect(validate('body', { limit: '1000' }).error).toBeDefined();
  });
});

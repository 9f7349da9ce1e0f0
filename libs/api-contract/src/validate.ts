import type { Static, TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { VirtError } from './errors.js';

export interface Validator<T> {
  check(value: unknown): value is T;
  /** Returns the value typed, or throws INVALID_ARG naming what is wrong. */
  parse(value: unknown): T;
}

/** Compiled on first use: an idle agent would otherwise hold the generated code of every operation's validator (RSS). */
export function compileValidator<S extends TSchema>(schema: S): Validator<Static<S>> {
  const compile = () => Compile(schema);
  let compiled: ReturnType<typeof compile> | undefined;
  const validator = () => (compiled ??= compile());
  return {
    check: (value: unknown): value is Static<S> => validator().Check(value),
    parse(value: unknown): Static<S> {
      if (validator().Check(value)) return value as Static<S>;
      throw new VirtError('INVALID_ARG', describeErrors(validator().Errors(value)));
    },
  };
}

interface SchemaError {
  instancePath: string;
  message: string;
  keyword: string;
  params: unknown;
}

/** Keeps the most specific errors (the deepest paths) so a union does not drown the real cause. */
export function describeErrors(errors: readonly SchemaError[]): string {
  if (errors.length === 0) return 'invalid input';
  const useful = errors.filter((e) => e.keyword !== 'anyOf' && e.keyword !== 'boolean');
  const list = (useful.length ? useful : errors).slice(0, 3);
  return list
    .map((e) => {
      const where = e.instancePath || '(root)';
      const extra = e.keyword === 'additionalProperties' ? `: ${JSON.stringify((e.params as { additionalProperties?: unknown }).additionalProperties)}` : '';
      return `${where} ${e.message}${extra}`;
    })
    .join('; ');
}

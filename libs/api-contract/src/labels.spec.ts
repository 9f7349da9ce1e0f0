import { describe, expect, it } from 'vitest';
import { compileValidator } from './validate.js';
import { VirtError } from './errors.js';
import { Labels, isLabelKey, isLabelValue, matchesLabelSelector, parseLabelSelector } from './labels.js';

const labels = { app: 'web', tier: 'front', 'example.com/owner': 'team-a', empty: '' };

describe('label keys and values', () => {
  it('follow the Kubernetes syntax', () => {
    for (const key of ['app', 'a', 'app.kubernetes.io/name', 'example.com/x_y-z.1', 'A1']) expect(isLabelKey(key), key).toBe(true);
    for (const key of ['', '-app', 'app-', '/app', 'Example.com/app', 'a/b/c', 'x'.repeat(64), `${'a'.repeat(254)}/x`, 'a b']) expect(isLabelKey(key), key).toBe(false);
    for (const value of ['', 'v', 'v1.2_3-x', 'x'.repeat(63)]) expect(isLabelValue(value), value).toBe(true);
    for (const value of ['-v', 'v.', 'x'.repeat(64), 'a b', 'a/b']) expect(isLabelValue(value), value).toBe(false);
  });

  it('the Labels schema rejects bad keys, bad values and more than 64 labels', () => {
    const valid = compileValidator(Labels);
    expect(valid.parse(labels)).toEqual(labels);
    expect(() => valid.parse({ '-a': 'b' })).toThrow(VirtError);
    expect(() => valid.parse({ a: 'b c' })).toThrow(VirtError);
    expect(() => valid.parse(Object.fromEntries(Array.from({ length: 65 }, (_, index) => [`k${index}`, 'v'])))).toThrow(VirtError);
  });
});

describe('parseLabelSelector', () => {
  it('parses every operator of the Kubernetes syntax', () => {
    expect(parseLabelSelector('app=web, tier==front,env!=prod,owner,!legacy, zone in (a, b),size notin (xl)')).toEqual([
      { key: 'app', operator: 'in', values: ['web'] },
      { key: 'tier', operator: 'in', values: ['front'] },
      { key: 'env', operator: 'notin', values: ['prod'] },
      { key: 'owner', operator: 'exists', values: [] },
      { key: 'legacy', operator: 'doesnotexist', values: [] },
      { key: 'zone', operator: 'in', values: ['a', 'b'] },
      { key: 'size', operator: 'notin', values: ['xl'] },
    ]);
    expect(parseLabelSelector('')).toEqual([]);
    expect(parseLabelSelector('example.com/owner=team-a,empty=')).toEqual([
      { key: 'example.com/owner', operator: 'in', values: ['team-a'] },
      { key: 'empty', operator: 'in', values: [''] },
    ]);
  });

  it('rejects bad syntax with INVALID_ARG', () => {
    for (const selector of ['a,,b', 'app in (a', 'app in a,b)', '=x', 'app=we b', '-x', 'app in ((a))', 'x'.repeat(4097), 'a=b,']) {
      const error = (() => {
        try {
          parseLabelSelector(selector);
          return undefined;
        } catch (failure) {
          return failure;
        }
      })();
      expect(VirtError.is(error, 'INVALID_ARG'), selector).toBe(true);
    }
  });
});

describe('matchesLabelSelector', () => {
  const cases: [string, boolean][] = [
    ['', true],
    ['app=web', true],
    ['app==web', true],
    ['app=db', false],
    ['app!=db', true],
    ['app!=web', false],
    ['missing!=x', true],
    ['app', true],
    ['missing', false],
    ['!missing', true],
    ['!app', false],
    ['app in (db,web)', true],
    ['app in (db)', false],
    ['app notin (db)', true],
    ['app notin (web)', false],
    ['missing notin (web)', true],
    ['missing in (web)', false],
    ['empty=', true],
    ['app=web,tier=front', true],
    ['app=web,tier=back', false],
    ['example.com/owner in (team-a)', true],
  ];
  it.each(cases)('%s → %s', (selector, expected) => {
    expect(matchesLabelSelector(labels, selector)).toBe(expected);
  });

  it('an object without labels has none of them', () => {
    expect(matchesLabelSelector(undefined, '!app,app!=x,app notin (x)')).toBe(true);
    expect(matchesLabelSelector(undefined, 'app')).toBe(false);
  });
});

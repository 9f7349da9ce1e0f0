import Type, { type Static } from 'typebox';
import { VirtError } from './errors.js';

const NAME = '[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?';
const DNS_LABEL = '[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?';
/** Kubernetes label keys: an optional DNS-subdomain prefix (≤ 253) and `/`, then a name of ≤ 63 characters. */
export const LABEL_KEY_PATTERN = `^(?:(?=[^/]{1,253}/)${DNS_LABEL}(?:\\.${DNS_LABEL})*/)?${NAME}$`;
/** Kubernetes label values: empty, or ≤ 63 characters of `A-Za-z0-9-_.` starting and ending alphanumeric. */
export const LABEL_VALUE_PATTERN = `^(?:${NAME})?$`;

export const LabelKey = Type.String({ pattern: LABEL_KEY_PATTERN, maxLength: 317, description: 'Label key: [prefix/]name (Kubernetes syntax)' });
export const LabelValue = Type.String({ pattern: LABEL_VALUE_PATTERN, maxLength: 63, description: 'Label value (may be empty)' });
export const MAX_LABELS = 64;
export const Labels = Type.Record(LabelKey, LabelValue, {
  maxProperties: MAX_LABELS,
  additionalProperties: false,
  title: 'Labels',
  description: 'Key/value labels (Kubernetes syntax) for selecting objects in lists',
});
export type Labels = Static<typeof Labels>;

export const LabelSelector = Type.String({
  maxLength: 4096,
  description: 'Kubernetes label selector: k=v, k==v, k!=v, k, !k, k in (a,b), k notin (a,b); a comma means AND',
});

const keyPattern = new RegExp(LABEL_KEY_PATTERN);
const valuePattern = new RegExp(LABEL_VALUE_PATTERN);

export function isLabelKey(value: string): boolean {
  return keyPattern.test(value);
}

export function isLabelValue(value: string): boolean {
  return valuePattern.test(value);
}

export type LabelOperator = 'in' | 'notin' | 'exists' | 'doesnotexist';
/** One requirement of a parsed selector; `=`/`==` become `in` with one value and `!=` becomes `notin`. */
export interface LabelRequirement {
  key: string;
  operator: LabelOperator;
  values: string[];
}

const invalid = (selector: string, why: string) => new VirtError('INVALID_ARG', `invalid label selector ${JSON.stringify(selector)}: ${why}`);

/** Splits on commas outside parentheses. */
function splitTerms(selector: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let start = 0;
  for (let index = 0; index < selector.length; index++) {
    const char = selector[index];
    if (char === '(') depth++;
    else if (char === ')') depth--;
    if (depth < 0 || depth > 1) throw invalid(selector, 'unbalanced parentheses');
    if (char === ',' && depth === 0) {
      terms.push(selector.slice(start, index));
      start = index + 1;
    }
  }
  if (depth !== 0) throw invalid(selector, 'unbalanced parentheses');
  terms.push(selector.slice(start));
  return terms;
}

function checkKey(selector: string, key: string): string {
  if (!isLabelKey(key)) throw invalid(selector, `${JSON.stringify(key)} is not a label key`);
  return key;
}

function checkValue(selector: string, value: string): string {
  if (!isLabelValue(value)) throw invalid(selector, `${JSON.stringify(value)} is not a label value`);
  return value;
}

/** Parses a Kubernetes equality/set-based label selector; an empty selector matches everything. Bad syntax is INVALID_ARG. */
export function parseLabelSelector(selector: string): LabelRequirement[] {
  if (selector.length > 4096) throw invalid(selector.slice(0, 64), 'longer than 4096 characters');
  if (selector.trim() === '') return [];
  return splitTerms(selector).map((raw) => {
    const term = raw.trim();
    if (term === '') throw invalid(selector, 'empty term');
    const set = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(term);
    if (set) {
      const values = set[3]!.split(',').map((value) => checkValue(selector, value.trim()));
      return { key: checkKey(selector, set[1]!), operator: set[2] as 'in' | 'notin', values };
    }
    const equality = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (equality) {
      const operator = equality[2] === '!=' ? 'notin' : 'in';
      return { key: checkKey(selector, equality[1]!), operator, values: [checkValue(selector, equality[3]!)] };
    }
    if (term.startsWith('!')) return { key: checkKey(selector, term.slice(1).trim()), operator: 'doesnotexist', values: [] };
    return { key: checkKey(selector, term), operator: 'exists', values: [] };
  });
}

/** Whether labels satisfy every requirement (Kubernetes semantics: `!=` and `notin` also match a missing key). */
export function matchesLabelSelector(labels: Readonly<Record<string, string>> | undefined, selector: string | readonly LabelRequirement[]): boolean {
  const requirements = typeof selector === 'string' ? parseLabelSelector(selector) : selector;
  return requirements.every(({ key, operator, values }) => {
    const value = labels !== undefined && Object.hasOwn(labels, key) ? labels[key] : undefined;
    switch (operator) {
      case 'exists':
        return value !== undefined;
      case 'doesnotexist':
        return value === undefined;
      case 'in':
        return value !== undefined && values.includes(value);
      case 'notin':
        return value === undefined || !values.includes(value);
    }
  });
}

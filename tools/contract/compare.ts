/** Finds incompatible changes between two versions of the API contract; additions are compatible. */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };
export type Schema = JsonObject | boolean;

/** Requests flow from clients (narrowing breaks them); responses flow to clients (removing or widening breaks them). */
export type Direction = 'request' | 'response';

export interface Problem {
  where: string;
  what: string;
}

export interface ContractSnapshot {
  openapi: JsonObject;
  errorCodes: Record<string, number>;
  subjects: Record<string, string>;
  operations: Record<string, { access: string; subject: string; request: Schema; response: Schema }>;
  lifecycle: Record<string, readonly string[]>;
  states: Record<string, readonly string[]>;
}

const isObject = (value: unknown): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Resolves local `#/…` references against the document a schema came from. */
function resolve(schema: Schema, root: JsonObject, seen = new Set<string>()): Schema {
  if (!isObject(schema) || typeof schema['$ref'] !== 'string') return schema;
  const ref = schema['$ref'];
  if (!ref.startsWith('#/') || seen.has(ref)) return schema;
  seen.add(ref);
  let target: Json | undefined = root;
  for (const part of ref.slice(2).split('/')) {
    const key = part.replaceAll('~1', '/').replaceAll('~0', '~');
    target = isObject(target) ? target[key] : undefined;
  }
  return isObject(target) || typeof target === 'boolean' ? resolve(target, root, seen) : schema;
}

function typesOf(schema: JsonObject): Set<string> | undefined {
  // OpenAPI 3.0 writes null as a nullable object limited to null; 3.1 as type null: the same values
  if (Array.isArray(schema['enum']) && schema['enum'].length > 0 && schema['enum'].every((value) => value === null)) return new Set(['null']);
  const type = schema['type'];
  const nullable = schema['nullable'] === true ? ['null'] : [];
  if (typeof type === 'string') return new Set([type, ...nullable]);
  if (Array.isArray(type)) return new Set([...type.filter((t): t is string => typeof t === 'string'), ...nullable]);
  return undefined;
}

function enumOf(schema: JsonObject): Json[] | undefined {
  if (Array.isArray(schema['enum'])) return schema['enum'];
  if ('const' in schema) return [schema['const'] ?? null];
  // type null allows one value
  if (schema['type'] === 'null') return [null];
  return undefined;
}

const show = (value: Json): string => JSON.stringify(value);

/** A type set `inner` fits in `outer` (an integer fits in a number). */
function fits(inner: Set<string>, outer: Set<string>): boolean {
  return [...inner].every((t) => outer.has(t) || (t === 'integer' && outer.has('number')));
}

export class SchemaComparer {
  constructor(
    private readonly oldRoot: JsonObject,
    private readonly newRoot: JsonObject,
  ) {}

  private readonly visiting = new Set<string>();

  compare(oldSchema: Schema, newSchema: Schema, direction: Direction, where: string): Problem[] {
    const oldRef = isObject(oldSchema) && typeof oldSchema['$ref'] === 'string' ? oldSchema['$ref'] : '';
    const newRef = isObject(newSchema) && typeof newSchema['$ref'] === 'string' ? newSchema['$ref'] : '';
    const key = `${direction}|${oldRef}|${newRef}`;
    if ((oldRef || newRef) && this.visiting.has(key)) return [];
    if (oldRef || newRef) this.visiting.add(key);
    try {
      return this.compareResolved(resolve(oldSchema, this.oldRoot), resolve(newSchema, this.newRoot), direction, where);
    } finally {
      this.visiting.delete(key);
    }
  }

  private compareResolved(oldSchema: Schema, newSchema: Schema, direction: Direction, where: string): Problem[] {
    if (typeof oldSchema === 'boolean' || typeof newSchema === 'boolean') {
      if (oldSchema === newSchema) return [];
      const breaks = direction === 'request' ? newSchema === false : newSchema === true || oldSchema === false;
      return breaks ? [{ where, what: `schema changed from ${show(oldSchema)} to ${show(newSchema)}` }] : [];
    }
    const problems: Problem[] = [];
    const oldTypes = typesOf(oldSchema);
    const newTypes = typesOf(newSchema);
    if (oldTypes && !newTypes && direction === 'response' && !this.hasVariants(newSchema) && !enumOf(newSchema)) {
      problems.push({ where, what: `type ${[...oldTypes].join('|')} is no longer stated` });
    } else if (oldTypes && newTypes) {
      const ok = direction === 'request' ? fits(oldTypes, newTypes) : fits(newTypes, oldTypes);
      if (!ok) problems.push({ where, what: `type changed from ${[...oldTypes].join('|')} to ${[...newTypes].join('|')}` });
    } else if (!oldTypes && newTypes && direction === 'request' && !this.hasVariants(oldSchema) && !enumOf(oldSchema)) {
      problems.push({ where, what: `now restricted to type ${[...newTypes].join('|')}` });
    }

    const oldEnum = enumOf(oldSchema);
    const newEnum = enumOf(newSchema);
    if (oldEnum) {
      if (!newEnum && direction === 'response' && !this.hasVariants(newSchema)) {
        problems.push({ where, what: `no longer limited to the values ${oldEnum.map(show).join(', ')}` });
      }
      if (newEnum) {
        const kept = new Set(newEnum.map(show));
        for (const value of oldEnum) if (!kept.has(show(value))) problems.push({ where, what: `enum value ${show(value)} removed` });
      }
    } else if (newEnum && direction === 'request') {
      problems.push({ where, what: `now limited to the values ${newEnum.map(show).join(', ')}` });
    }

    problems.push(...this.compareObjects(oldSchema, newSchema, direction, where));
    if (oldSchema['items'] !== undefined && newSchema['items'] !== undefined) {
      problems.push(...this.compare(oldSchema['items'] as Schema, newSchema['items'] as Schema, direction, `${where}[]`));
    }
    if (isObject(oldSchema['additionalProperties']) && isObject(newSchema['additionalProperties'])) {
      problems.push(...this.compare(oldSchema['additionalProperties'], newSchema['additionalProperties'], direction, `${where}{*}`));
    }
    if (isObject(oldSchema['patternProperties']) && isObject(newSchema['patternProperties'])) {
      const oldValues = Object.values(oldSchema['patternProperties']);
      const newValues = Object.values(newSchema['patternProperties']);
      oldValues.forEach((value, index) => {
        const counterpart = newValues[index];
        if (counterpart !== undefined) problems.push(...this.compare(value as Schema, counterpart as Schema, direction, `${where}{*}`));
      });
    }
    problems.push(...this.compareVariants(oldSchema, newSchema, direction, where));
    return problems;
  }

  private hasVariants(schema: JsonObject): boolean {
    return Array.isArray(schema['anyOf']) || Array.isArray(schema['oneOf']);
  }

  private compareObjects(oldSchema: JsonObject, newSchema: JsonObject, direction: Direction, where: string): Problem[] {
    const problems: Problem[] = [];
    const oldProps = isObject(oldSchema['properties']) ? oldSchema['properties'] : {};
    const newProps = isObject(newSchema['properties']) ? newSchema['properties'] : {};
    const oldRequired = new Set(Array.isArray(oldSchema['required']) ? (oldSchema['required'] as string[]) : []);
    const newRequired = new Set(Array.isArray(newSchema['required']) ? (newSchema['required'] as string[]) : []);
    const closed = newSchema['additionalProperties'] === false;
    for (const [name, oldProp] of Object.entries(oldProps)) {
      const at = `${where}.${name}`;
      const newProp = newProps[name];
      if (newProp === undefined) {
        if (direction === 'response') problems.push({ where: at, what: 'response property removed' });
        else if (closed) problems.push({ where: at, what: 'request field removed (unknown fields are rejected)' });
        continue;
      }
      if (direction === 'response' && oldRequired.has(name) && !newRequired.has(name)) {
        problems.push({ where: at, what: 'response property is no longer always present' });
      }
      problems.push(...this.compare(oldProp as Schema, newProp as Schema, direction, at));
    }
    if (direction === 'request') {
      for (const name of newRequired) {
        if (oldRequired.has(name)) continue;
        problems.push({ where: `${where}.${name}`, what: name in oldProps ? 'request field became required' : 'new required request field' });
      }
    }
    return problems;
  }

  private compareVariants(oldSchema: JsonObject, newSchema: JsonObject, direction: Direction, where: string): Problem[] {
    let oldVariants = (oldSchema['anyOf'] ?? oldSchema['oneOf']) as Schema[] | undefined;
    let newVariants = (newSchema['anyOf'] ?? newSchema['oneOf']) as Schema[] | undefined;
    if (!oldVariants && !newVariants) return [];
    // A union that became a plain schema (or the reverse) is compared as a union of one.
    oldVariants ??= [oldSchema];
    newVariants ??= [newSchema];
    const problems: Problem[] = [];
    const unmatched = new Set(newVariants.map((_, index) => index));
    oldVariants.forEach((oldVariant, index) => {
      // Each old variant must live on in some new variant; the one with the fewest problems is its successor.
      let best: { index: number; problems: Problem[] } | undefined;
      for (const candidate of unmatched) {
        const found = this.compare(oldVariant, newVariants[candidate]!, direction, `${where}<${index}>`);
        if (!best || found.length < best.problems.length) best = { index: candidate, problems: found };
        if (found.length === 0) break;
      }
      if (!best) problems.push({ where: `${where}<${index}>`, what: 'union variant removed' });
      else {
        unmatched.delete(best.index);
        problems.push(...best.problems);
      }
    });
    return problems;
  }
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

function jsonSchemaOf(content: Json | undefined): Schema | undefined {
  if (!isObject(content)) return undefined;
  const media = content['application/json'] ?? Object.values(content)[0];
  return isObject(media) && (isObject(media['schema']) || typeof media['schema'] === 'boolean') ? (media['schema'] as Schema) : undefined;
}

function parametersOf(operation: JsonObject): Map<string, JsonObject> {
  const parameters = new Map<string, JsonObject>();
  for (const parameter of Array.isArray(operation['parameters']) ? operation['parameters'] : []) {
    if (isObject(parameter)) parameters.set(`${String(parameter['in'])}:${String(parameter['name'])}`, parameter);
  }
  return parameters;
}

export function compareOpenApi(oldDoc: JsonObject, newDoc: JsonObject): Problem[] {
  const problems: Problem[] = [];
  const comparer = new SchemaComparer(oldDoc, newDoc);
  const oldPaths = isObject(oldDoc['paths']) ? oldDoc['paths'] : {};
  const newPaths = isObject(newDoc['paths']) ? newDoc['paths'] : {};
  for (const [path, oldItem] of Object.entries(oldPaths)) {
    if (!isObject(oldItem)) continue;
    const newItem = newPaths[path];
    for (const method of METHODS) {
      const oldOp = oldItem[method];
      if (!isObject(oldOp)) continue;
      const where = `${method.toUpperCase()} ${path}`;
      const newOp = isObject(newItem) ? newItem[method] : undefined;
      if (!isObject(newOp)) {
        problems.push({ where, what: 'operation removed' });
        continue;
      }
      if (oldOp['operationId'] !== undefined && oldOp['operationId'] !== newOp['operationId']) {
        problems.push({ where, what: `operationId changed from ${show(oldOp['operationId'])} to ${show(newOp['operationId'] ?? null)}` });
      }
      const oldParams = parametersOf(oldOp);
      const newParams = parametersOf(newOp);
      for (const [key, oldParam] of oldParams) {
        const newParam = newParams.get(key);
        const at = `${where} ${key}`;
        if (!newParam) {
          problems.push({ where: at, what: 'parameter removed' });
          continue;
        }
        if (newParam['required'] === true && oldParam['required'] !== true) problems.push({ where: at, what: 'parameter became required' });
        problems.push(...comparer.compare(oldParam['schema'] as Schema, newParam['schema'] as Schema, 'request', at));
      }
      for (const [key, newParam] of newParams) {
        if (!oldParams.has(key) && newParam['required'] === true) problems.push({ where: `${where} ${key}`, what: 'new required parameter' });
      }
      const oldBody = isObject(oldOp['requestBody']) ? oldOp['requestBody'] : undefined;
      const newBody = isObject(newOp['requestBody']) ? newOp['requestBody'] : undefined;
      if (newBody?.['required'] === true && oldBody?.['required'] !== true) problems.push({ where: `${where} body`, what: 'request body became required' });
      const oldBodySchema = jsonSchemaOf(oldBody?.['content']);
      const newBodySchema = jsonSchemaOf(newBody?.['content']);
      if (oldBodySchema !== undefined) {
        if (newBodySchema === undefined) problems.push({ where: `${where} body`, what: 'request body removed' });
        else problems.push(...comparer.compare(oldBodySchema, newBodySchema, 'request', `${where} body`));
      }
      const oldResponses = isObject(oldOp['responses']) ? oldOp['responses'] : {};
      const newResponses = isObject(newOp['responses']) ? newOp['responses'] : {};
      for (const [status, oldResponse] of Object.entries(oldResponses)) {
        const at = `${where} ${status}`;
        const newResponse = newResponses[status];
        if (!isObject(newResponse)) {
          if (/^[123]/.test(status)) problems.push({ where: at, what: 'success response removed' });
          continue;
        }
        const oldSchema = isObject(oldResponse) ? jsonSchemaOf(oldResponse['content']) : undefined;
        const newSchema = jsonSchemaOf(newResponse['content']);
        if (oldSchema === undefined) continue;
        if (newSchema === undefined) problems.push({ where: at, what: 'response body removed' });
        else problems.push(...comparer.compare(oldSchema, newSchema, 'response', at));
      }
    }
  }
  return problems;
}

function compareRecords<T>(
  oldRecord: Record<string, T>,
  newRecord: Record<string, T>,
  label: string,
  same: (a: T, b: T, key: string) => Problem[],
): Problem[] {
  const problems: Problem[] = [];
  for (const [key, oldValue] of Object.entries(oldRecord)) {
    if (!Object.hasOwn(newRecord, key)) problems.push({ where: `${label} ${key}`, what: 'removed' });
    else problems.push(...same(oldValue, newRecord[key] as T, key));
  }
  return problems;
}

function compareLists(label: string) {
  return (oldList: readonly string[], newList: readonly string[], key: string): Problem[] =>
    oldList.filter((value) => !newList.includes(value)).map((value) => ({ where: `${label} ${key}`, what: `${value} removed` }));
}

export function compareSnapshots(oldSnapshot: ContractSnapshot, newSnapshot: ContractSnapshot): Problem[] {
  const operationComparer = new SchemaComparer({}, {});
  return [
    ...compareOpenApi(oldSnapshot.openapi, newSnapshot.openapi),
    ...compareRecords(oldSnapshot.errorCodes, newSnapshot.errorCodes, 'error code', (a, b, key) =>
      a === b ? [] : [{ where: `error code ${key}`, what: `status changed from ${a} to ${b}` }],
    ),
    ...compareRecords(oldSnapshot.subjects, newSnapshot.subjects, 'subject', (a, b, key) =>
      a === b ? [] : [{ where: `subject ${key}`, what: `changed from ${a} to ${b}` }],
    ),
    ...compareRecords(oldSnapshot.operations, newSnapshot.operations, 'operation', (a, b, key) => [
      ...(a.access === b.access ? [] : [{ where: `operation ${key}`, what: `access changed from ${a.access} to ${b.access}` }]),
      ...(a.subject === b.subject ? [] : [{ where: `operation ${key}`, what: `subject changed from ${a.subject} to ${b.subject}` }]),
      ...operationComparer.compare(a.request, b.request, 'request', `operation ${key} request`),
      ...operationComparer.compare(a.response, b.response, 'response', `operation ${key} response`),
    ]),
    ...compareRecords(oldSnapshot.lifecycle, newSnapshot.lifecycle, 'lifecycle type', compareLists('lifecycle type')),
    ...compareRecords(oldSnapshot.states, newSnapshot.states, 'state', compareLists('state')),
  ];
}

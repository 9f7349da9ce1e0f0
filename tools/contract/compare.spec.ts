import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compareOpenApi, compareSnapshots, SchemaComparer, type ContractSnapshot, type Schema } from './compare.js';

const committed = JSON.parse(readFileSync(new URL('../../libs/api-contract/contract/v1.json', import.meta.url), 'utf8')) as ContractSnapshot;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the cases edit arbitrary paths of a parsed JSON document
type AnyJson = any;

/** A deep copy of the committed contract for one edit. */
function edited(edit: (snapshot: ContractSnapshot & { openapi: AnyJson }) => void): ContractSnapshot {
  const copy = structuredClone(committed) as ContractSnapshot & { openapi: AnyJson };
  edit(copy);
  return copy;
}

const whats = (snapshot: ContractSnapshot) => compareSnapshots(committed, snapshot).map((p) => `${p.where}: ${p.what}`);

describe('compareSnapshots on the committed contract', () => {
  it('finds nothing between the contract and itself', () => {
    expect(compareSnapshots(committed, structuredClone(committed))).toEqual([]);
  });

  it('fails a removed enum value in a shared response component', () => {
    const problems = whats(
      edited((s) => {
        const state = s.openapi.components.schemas.Domain.properties.state;
        state.enum = state.enum.filter((v: string) => v !== 'crashed');
      }),
    );
    expect(problems).toContain('GET /v1/nodes/{node}/domains/{id} 200.state: enum value "crashed" removed');
  });

  it('fails a removed enum value in a request body', () => {
    const problems = whats(
      edited((s) => {
        const action = s.openapi.paths['/v1/nodes/{node}/domains/{id}/state'].put.requestBody.content['application/json'].schema.properties.action;
        action.enum = action.enum.filter((v: string) => v !== 'reset');
      }),
    );
    expect(problems).toEqual(['PUT /v1/nodes/{node}/domains/{id}/state body.action: enum value "reset" removed']);
  });

  it('passes an added optional request field and an added response property', () => {
    const problems = whats(
      edited((s) => {
        const body = s.openapi.paths['/v1/nodes/{node}/domains'].post.requestBody.content['application/json'].schema;
        body.properties.description = { type: 'string' };
        s.openapi.components.schemas.Domain.properties.description = { type: 'string' };
        s.openapi.components.schemas.Domain.required.push('description');
        s.errorCodes['QUOTA_EXCEEDED'] = 429;
      }),
    );
    expect(problems).toEqual([]);
  });

  it('fails a new required request field and a field becoming required', () => {
    const problems = whats(
      edited((s) => {
        const body = s.openapi.paths['/v1/nodes/{node}/domains'].post.requestBody.content['application/json'].schema;
        body.properties.owner = { type: 'string' };
        body.required.push('owner', 'memory');
      }),
    );
    expect(problems).toEqual([
      'POST /v1/nodes/{node}/domains body.owner: new required request field',
      'POST /v1/nodes/{node}/domains body.memory: request field became required',
    ]);
  });

  it('fails a removed request field when unknown fields are rejected', () => {
    const problems = whats(
      edited((s) => {
        delete s.openapi.paths['/v1/nodes/{node}/domains'].post.requestBody.content['application/json'].schema.properties.autostart;
      }),
    );
    expect(problems).toEqual(['POST /v1/nodes/{node}/domains body.autostart: request field removed (unknown fields are rejected)']);
  });

  it('fails a removed path and a removed method', () => {
    const problems = whats(
      edited((s) => {
        delete s.openapi.paths['/v1/nodes/{node}/domains/{id}/exec'];
        delete s.openapi.paths['/v1/nodes/{node}/domains/{id}'].delete;
      }),
    );
    expect(problems).toEqual(['DELETE /v1/nodes/{node}/domains/{id}: operation removed', 'POST /v1/nodes/{node}/domains/{id}/exec: operation removed']);
  });

  it('fails a changed error status and a removed error code', () => {
    const problems = whats(
      edited((s) => {
        s.errorCodes['NO_DOMAIN'] = 410;
        delete s.errorCodes['RATE_LIMITED'];
      }),
    );
    expect(problems).toEqual(['error code NO_DOMAIN: status changed from 404 to 410', 'error code RATE_LIMITED: removed']);
  });

  it('fails a removed response property and a changed response type', () => {
    const problems = whats(
      edited((s) => {
        delete s.openapi.components.schemas.ExecResult.properties.timedOut;
        s.openapi.components.schemas.ExecResult.properties.exitCode = { type: 'string' };
      }),
    );
    expect(problems).toContain('POST /v1/nodes/{node}/domains/{id}/exec 200.timedOut: response property removed');
    expect(problems).toContain('POST /v1/nodes/{node}/domains/{id}/exec 200.exitCode: type changed from integer to string');
  });

  it('fails changed subjects, operation access, lifecycle details and state reasons', () => {
    const problems = whats(
      edited((s) => {
        s.subjects['consoleOutput'] = 'virt.v1.{node}.console.{uuid}.output';
        s.operations['domain.exec']!.access = 'ro';
        delete s.operations['domain.stats'];
        s.lifecycle['STOPPED'] = s.lifecycle['STOPPED']!.filter((d) => d !== 'CRASHED');
        s.states['paused'] = s.states['paused']!.filter((r) => r !== 'user');
      }),
    );
    expect(problems).toEqual([
      'subject consoleOutput: changed from virt.v1.{node}.console.{uuid}.out to virt.v1.{node}.console.{uuid}.output',
      'operation domain.stats: removed',
      'operation domain.exec: access changed from rw to ro',
      'lifecycle type STOPPED: CRASHED removed',
      'state paused: user removed',
    ]);
  });

  it('fails a new required query parameter and a removed one', () => {
    const problems = whats(
      edited((s) => {
        const events = s.openapi.paths['/v1/events'].get;
        events.parameters = events.parameters.filter((p: { name: string }) => p.name !== 'since');
        events.parameters.push({ in: 'query', name: 'token', required: true, schema: { type: 'string' } });
      }),
    );
    expect(problems).toEqual(['GET /v1/events query:since: parameter removed', 'GET /v1/events query:token: new required parameter']);
  });
});

describe('SchemaComparer', () => {
  const compare = (oldSchema: Schema, newSchema: Schema, direction: 'request' | 'response') =>
    new SchemaComparer({}, {}).compare(oldSchema, newSchema, direction, '$').map((p) => p.what);

  it('lets requests widen and responses narrow, not the reverse', () => {
    const integer = { type: 'integer' };
    const number = { type: 'number' };
    expect(compare(integer, number, 'request')).toEqual([]);
    expect(compare(integer, number, 'response')).toEqual(['type changed from integer to number']);
    expect(compare(number, integer, 'response')).toEqual([]);
    expect(compare(number, integer, 'request')).toEqual(['type changed from number to integer']);
  });

  it('reads OpenAPI 3.0 nullable as null, so the 3.1 form of the same values passes', () => {
    const openapi30Null = { type: 'object', nullable: true, enum: [null] };
    expect(compare(openapi30Null, { type: 'null' }, 'request')).toEqual([]);
    expect(compare(openapi30Null, { type: 'null' }, 'response')).toEqual([]);
    expect(compare({ type: 'string', nullable: true }, { type: ['string', 'null'] }, 'request')).toEqual([]);
    expect(compare({ type: 'string', nullable: true }, { type: 'string' }, 'request')).toEqual(['type changed from string|null to string']);
  });

  it('matches union variants in any order and fails a removed variant', () => {
    const a = { type: 'object', properties: { path: { type: 'string' } }, required: ['path'] };
    const b = { type: 'object', properties: { pool: { type: 'string' } }, required: ['pool'] };
    expect(compare({ anyOf: [a, b] }, { anyOf: [b, a] }, 'request')).toEqual([]);
    expect(compare({ anyOf: [a, b] }, { anyOf: [a] }, 'request')).toEqual(['union variant removed']);
  });

  it('follows $refs in both documents, including recursive ones', () => {
    const doc = (values: string[]) => ({
      components: { schemas: { Tree: { type: 'object', properties: { kind: { enum: values }, children: { type: 'array', items: { $ref: '#/components/schemas/Tree' } } } } } },
      paths: { '/t': { get: { responses: { 200: { description: '', content: { 'application/json': { schema: { $ref: '#/components/schemas/Tree' } } } } } } } },
    });
    expect(compareOpenApi(doc(['a', 'b']), doc(['a', 'b', 'c']))).toEqual([]);
    expect(compareOpenApi(doc(['a', 'b']), doc(['a'])).map((p) => `${p.where}: ${p.what}`)).toEqual(['GET /t 200.kind: enum value "b" removed']);
  });
});

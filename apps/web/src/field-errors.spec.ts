import { describe, expect, it } from 'vitest';
import type { ErrorCode } from '@virtbus/api-contract';
import { ApiFailure } from './api.js';
import { fieldErrors } from './field-errors.js';

const failure = (code: ErrorCode, message: string) => new ApiFailure({ code, message, status: 400 });

describe('fieldErrors: an API error placed on the form field it is about', () => {
  it('reads the JSON pointers of a validation message (define and define-from-image bodies)', () => {
    expect(fieldErrors(failure('INVALID_ARG', 'body: /name must match pattern "^x$"; /memory must be >= 1'))).toEqual({
      name: 'INVALID_ARG: /name must match pattern "^x$"',
      memory: 'INVALID_ARG: /memory must be >= 1',
    });
    expect(fieldErrors(failure('INVALID_ARG', 'body: /image/pool must match pattern "^x$"'))).toEqual({ pool: 'INVALID_ARG: /image/pool must match pattern "^x$"' });
  });

  it('puts codes about one thing on its field, and anything else on the form', () => {
    expect(fieldErrors(failure('DOMAIN_EXISTS', 'domain web exists'))).toEqual({ name: 'domain web exists' });
    expect(fieldErrors(failure('NO_STORAGE_VOL', 'no volume x'))).toEqual({ volume: 'no volume x' });
    expect(fieldErrors(failure('OPERATION_INVALID', 'no'))).toEqual({ form: 'OPERATION_INVALID: no' });
    expect(fieldErrors(new Error('offline'))).toEqual({ form: 'Error: offline' });
  });
});

import { describe, expect, it } from 'vitest';
import { VirtError } from '@virtbus/api-contract';
import { assertSecureListen } from './listen-policy.js';

describe('assertSecureListen', () => {
  it('allows plaintext on loopback', () => {
    expect(() => assertSecureListen('127.0.0.1', { tls: false })).not.toThrow();
    expect(() => assertSecureListen('::1', { tls: false })).not.toThrow();
  });

  it('refuses plaintext on any other address with OPERATION_INVALID', () => {
    for (const host of ['0.0.0.0', '::', '10.1.2.3']) {
      let error: unknown;
      try {
        assertSecureListen(host, { tls: false });
      } catch (e) {
        error = e;
      }
      expect(VirtError.is(error, 'OPERATION_INVALID')).toBe(true);
    }
  });

  it('allows any address with TLS or when forced', () => {
    expect(() => assertSecureListen('0.0.0.0', { tls: true })).not.toThrow();
    expect(() => assertSecureListen('0.0.0.0', { tls: false, allowInsecure: true })).not.toThrow();
  });
});

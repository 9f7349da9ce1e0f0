import { VirtError } from '@virtbus/api-contract';
import { describe, expect, it } from 'vitest';
import { assertMigrationTls, wantsTls } from './tls-policy.js';

describe('migration TLS policy', () => {
  it('encrypts by default once a migration address is off loopback; an explicit tls wins', () => {
    expect(wantsTls(undefined, '127.0.0.1')).toBe(false);
    expect(wantsTls(undefined, '::1')).toBe(false);
    expect(wantsTls(undefined, '10.0.0.5')).toBe(true);
    expect(wantsTls(undefined, '0.0.0.0')).toBe(true);
    expect(wantsTls(false, '10.0.0.5')).toBe(false);
    expect(wantsTls(true, '127.0.0.1')).toBe(true);
  });

  it('refuses a TLS migration without certificates with MIGRATION_INCOMPATIBLE naming why TLS was chosen', () => {
    expect(() => assertMigrationTls({ node: 'a', tls: false, listenHost: '10.0.0.5' })).not.toThrow();
    expect(() => assertMigrationTls({ node: 'a', tls: true, listenHost: '10.0.0.5', tlsDir: '/etc/tls' })).not.toThrow();
    let error: unknown;
    try {
      assertMigrationTls({ node: 'a', tls: true, listenHost: '10.0.0.5', requested: undefined });
    } catch (caught) {
      error = caught;
    }
    expect(VirtError.is(error, 'MIGRATION_INCOMPATIBLE')).toBe(true);
    expect((error as Error).message).toMatch(/node a has no migration TLS certificates \(--migration-tls-dir\).*10\.0\.0\.5 is not loopback.*tls: false/);
    expect(() => assertMigrationTls({ node: 'b', tls: true, listenHost: '127.0.0.1', requested: true })).toThrow(/node b has no migration TLS certificates.*the request asks for tls/);
  });
});

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nkeys } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { VirtError } from '@virtbus/api-contract';
import { assertSecureNatsUrl, mergeNatsClientConfig, natsClientConfigFromEnv, natsConnectionOptions, natsTlsRequested } from './nats-connect.js';

function thrownCode(f: () => unknown): string | undefined {
  try {
    f();
  } catch (error) {
    return VirtError.is(error) ? error.code : 'not a VirtError';
  }
  return undefined;
}

describe('assertSecureNatsUrl', () => {
  it('allows plaintext to loopback', () => {
    for (const url of ['nats://127.0.0.1:4222', 'nats://localhost:4222', 'nats://[::1]:4222', '127.0.0.1:4222', 'nats://user:pw@127.0.0.2:1']) {
      expect(thrownCode(() => assertSecureNatsUrl(url, { tls: false }))).toBeUndefined();
    }
  });

  it('refuses plaintext to any other host with OPERATION_INVALID', () => {
    for (const url of ['nats://10.0.0.5:4222', 'nats.example.com:4222', 'nats://127.0.0.1:4222,nats://10.0.0.6:4222', 'ws://10.0.0.5:80']) {
      expect(thrownCode(() => assertSecureNatsUrl(url, { tls: false }))).toBe('OPERATION_INVALID');
    }
  });

  it('allows remote hosts with TLS, a tls:// URL, or when forced', () => {
    expect(thrownCode(() => assertSecureNatsUrl('nats://10.0.0.5:4222', { tls: true }))).toBeUndefined();
    expect(thrownCode(() => assertSecureNatsUrl('tls://10.0.0.5:4222', { tls: false }))).toBeUndefined();
    expect(thrownCode(() => assertSecureNatsUrl('nats://10.0.0.5:4222', { tls: false, allowInsecure: true }))).toBeUndefined();
  });

  it('names a malformed URL INVALID_ARG', () => {
    expect(thrownCode(() => assertSecureNatsUrl('nats://[bad', { tls: false }))).toBe('INVALID_ARG');
  });
});

describe('natsConnectionOptions', () => {
  it('defaults to plaintext loopback with no TLS object', () => {
    const options = natsConnectionOptions({});
    expect(options.servers).toEqual(['nats://127.0.0.1:4222']);
    expect(options.tls).toBeUndefined();
  });

  it('passes certificate files, inbox prefix and servers through', () => {
    const options = natsConnectionOptions({
      url: 'tls://n1.example:4222, tls://n2.example:4222',
      ca: '/pki/ca.crt',
      cert: '/pki/agent-a.crt',
      key: '/pki/agent-a.key',
      inboxPrefix: '_INBOX.agent-a',
      name: 'agent-a',
    });
    expect(options.servers).toEqual(['tls://n1.example:4222', 'tls://n2.example:4222']);
    expect(options.tls).toEqual({ caFile: '/pki/ca.crt', certFile: '/pki/agent-a.crt', keyFile: '/pki/agent-a.key' });
    expect(options.inboxPrefix).toBe('_INBOX.agent-a');
    expect(options.name).toBe('agent-a');
  });

  it('demands TLS (an empty tls object) for a tls:// URL without files', () => {
    expect(natsConnectionOptions({ url: 'tls://10.0.0.5:4222' }).tls).toEqual({});
    expect(natsTlsRequested({ url: 'nats://10.0.0.5:4222' })).toBe(false);
  });

  it('refuses plaintext off loopback unless forced', () => {
    expect(thrownCode(() => natsConnectionOptions({ url: 'nats://10.0.0.5:4222' }))).toBe('OPERATION_INVALID');
    expect(natsConnectionOptions({ url: 'nats://10.0.0.5:4222', allowInsecure: true }).servers).toEqual(['nats://10.0.0.5:4222']);
  });

  it('needs certificate and key together', () => {
    expect(thrownCode(() => natsConnectionOptions({ cert: '/pki/a.crt' }))).toBe('INVALID_ARG');
  });

  it('uses user/password, token, or an nkey seed file', () => {
    expect(natsConnectionOptions({ user: 'u', pass: 'p' })).toMatchObject({ user: 'u', pass: 'p' });
    expect(natsConnectionOptions({ token: 't' })).toMatchObject({ token: 't' });
    const dir = mkdtempSync(join(tmpdir(), 'virtbus-nkey-'));
    const seed = join(dir, 'seed');
    writeFileSync(seed, `${new TextDecoder().decode(nkeys.createUser().getSeed())}\n`);
    expect(typeof natsConnectionOptions({ nkeySeed: seed }).authenticator).toBe('function');
  });
});

describe('natsClientConfigFromEnv', () => {
  it('reads the variables the generator writes and lets flags override them', () => {
    const env = {
      NATS_URL: 'tls://127.0.0.1:4222',
      NATS_CA: '/b/ca.crt',
      NATS_CERT: '/b/a.crt',
      NATS_KEY: '/b/a.key',
      NATS_INBOX_PREFIX: '_INBOX.agent-a',
      VIRTBUS_NATS_ALLOW_INSECURE: 'true',
    };
    const config = natsClientConfigFromEnv(env);
    expect(config).toMatchObject({ url: 'tls://127.0.0.1:4222', ca: '/b/ca.crt', cert: '/b/a.crt', key: '/b/a.key', inboxPrefix: '_INBOX.agent-a', allowInsecure: true });
    expect(mergeNatsClientConfig(config, { url: 'tls://n1:4222', ca: undefined }).url).toBe('tls://n1:4222');
    expect(mergeNatsClientConfig(config, { url: 'tls://n1:4222', ca: undefined }).ca).toBe('/b/ca.crt');
    expect(natsClientConfigFromEnv({}).allowInsecure).toBe(false);
  });
});

import { describe, expect, it } from 'vitest';
import { VirtError } from '@virtbus/api-contract';
import { createToken, emptyTokenFile, parseTokenFile, parseTtl, serializeTokenFile, verifyToken } from './tokens.js';

describe('tokens', () => {
  const now = new Date('2026-01-01T00:00:00Z');

  it('stores only a hash and verifies the token', () => {
    const { token, record } = createToken({ name: 'alice', role: 'operator', nodes: ['a'], ttlSeconds: 3600, now });
    expect(token).toMatch(/^vbt_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(JSON.stringify(record)).not.toContain(token.split('_').slice(2).join('_'));
    expect(record.expiresAt).toBe('2026-01-01T01:00:00.000Z');
    const check = verifyToken([record], token, now);
    expect(check.ok && check.record.name).toBe('alice');
  });

  it('refuses expired, unknown, tampered and malformed tokens', () => {
    const { token, record } = createToken({ name: 'bob', role: 'read-only', ttlSeconds: 60, now });
    expect(verifyToken([record], token, new Date(now.getTime() + 61_000))).toEqual({ ok: false, reason: 'expired' });
    expect(verifyToken([], token, now)).toEqual({ ok: false, reason: 'unknown' });
    const tampered = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
    expect(verifyToken([record], tampered, now)).toEqual({ ok: false, reason: 'unknown' });
    expect(verifyToken([record], 'not-a-token', now)).toEqual({ ok: false, reason: 'malformed' });
  });

  it('keeps a token without ttl valid', () => {
    const { token, record } = createToken({ name: 'ci', role: 'admin', now });
    expect(record.expiresAt).toBeUndefined();
    expect(verifyToken([record], token, new Date('2100-01-01T00:00:00Z')).ok).toBe(true);
  });

  it('round-trips the token file and rejects bad ones', () => {
    const file = emptyTokenFile();
    file.tokens.push(createToken({ name: 'x', role: 'admin', now }).record);
    expect(parseTokenFile(serializeTokenFile(file))).toEqual(file);
    expect(() => parseTokenFile('{')).toThrow(VirtError);
    expect(() => parseTokenFile(JSON.stringify({ version: 1, tokens: [{ ...file.tokens[0], role: 'root' }] }))).toThrow(VirtError);
    expect(() => parseTokenFile(JSON.stringify({ version: 1, tokens: [file.tokens[0], file.tokens[0]] }))).toThrow(/twice/);
  });

  it('parses token lifetimes', () => {
    expect(parseTtl('90d')).toBe(90 * 86_400);
    expect(parseTtl('12h')).toBe(43_200);
    expect(parseTtl('30m')).toBe(1800);
    expect(parseTtl('45')).toBe(45);
    expect(() => parseTtl('0')).toThrow(VirtError);
    expect(() => parseTtl('1w')).toThrow(VirtError);
  });
});

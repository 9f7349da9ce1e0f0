import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureCertificateAuthority, issueCertificate, natsUserForDn, nodesFromUnit } from './pki.js';

describe('node scope in client certificates', () => {
  it('writes the scope as a second OU, in the nats user name too', () => {
    expect(natsUserForDn({ O: 'virtbus', OU: 'read-only', nodes: ['a', 'b'], CN: 'ro-ab' })).toBe('CN=ro-ab,OU=nodes a b,OU=read-only,O=virtbus');
    expect(nodesFromUnit('nodes a b')).toEqual(['a', 'b']);
    expect(nodesFromUnit('read-only')).toBeUndefined();
  });

  // skipped (reason: no openssl binary) where openssl is missing
  describe.runIf(spawnSync('openssl', ['version']).status === 0)('issueCertificate', () => {
    let dir = '';
    afterAll(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('reissues a kept certificate whose subject lacks the node scope, and keeps one that has it', async () => {
      dir = await mkdtemp(join(tmpdir(), 'virtbus-pki-'));
      const ca = await ensureCertificateAuthority(join(dir, 'ca'));
      const unscoped = await issueCertificate(ca, join(dir, 'certs'), 'ro-a', { subject: { O: 'virtbus', OU: 'read-only', CN: 'ro-a' }, client: true });
      const first = await readFile(unscoped.cert, 'utf8');
      const scoped = { O: 'virtbus', OU: 'read-only', nodes: ['a'], CN: 'ro-a' };
      await issueCertificate(ca, join(dir, 'certs'), 'ro-a', { subject: scoped, client: true });
      const second = await readFile(unscoped.cert, 'utf8');
      expect(second).not.toBe(first);
      expect(new X509Certificate(second).subject).toBe('O=virtbus\nOU=read-only\nOU=nodes a\nCN=ro-a');
      await issueCertificate(ca, join(dir, 'certs'), 'ro-a', { subject: scoped, client: true });
      expect(await readFile(unscoped.cert, 'utf8')).toBe(second);
    });
  });
});

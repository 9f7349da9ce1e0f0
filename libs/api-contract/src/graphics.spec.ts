import { describe, expect, it } from 'vitest';
import { compileValidator } from './validate.js';
import { DomainGraphics, vncAuthResponse } from './graphics.js';

describe('VNC authentication', () => {
  it('DES-encrypts the challenge with the bit-reversed password bytes (FIPS 46 test vector through the RFB key mirror)', () => {
    // key 13 34 57 79 9b bc df f1, each byte mirrored, is the password; 0123456789abcdef encrypts to 85e813540f0ab405
    const password = Buffer.from('c82cea9ed93dfb8f', 'hex').toString('latin1');
    const challenge = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');
    expect(vncAuthResponse(password, challenge).toString('hex')).toBe('85e813540f0ab405'.repeat(2));
  });

  it('pads a short password with zero bytes', () => {
    const challenge = Buffer.alloc(16, 7);
    expect(vncAuthResponse('ab', challenge)).toEqual(vncAuthResponse('ab\0\0\0\0\0\0', challenge));
    expect(vncAuthResponse('ab', challenge)).not.toEqual(vncAuthResponse('ac', challenge));
  });

  it('takes passwords of 8 printable characters at most, as VNC authentication does', () => {
    const graphics = compileValidator(DomainGraphics);
    expect(graphics.check({ type: 'vnc', password: '12345678' })).toBe(true);
    expect(graphics.check({ type: 'vnc', password: '123456789' })).toBe(false);
    expect(graphics.check({ type: 'vnc', password: 'pä' })).toBe(false);
  });
});

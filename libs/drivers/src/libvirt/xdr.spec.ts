import { describe, expect, it } from 'vitest';
import { decodeHeader, DomainRef, encodePacket, HEADER_BYTES, MessageStatus, MessageType, Procedures, REMOTE_PROGRAM, uuidBytes, uuidString } from './protocol.js';
import { decodeXdr, encodeXdr, xdrArray, xdrDouble, xdrInt, xdrOptional, xdrString, xdrUhyper, xdrUnion } from './xdr.js';

describe('XDR codecs', () => {
  it('pads strings to 4 bytes after a length word', () => {
    expect(encodeXdr(xdrString(16), 'abcde').toString('hex')).toBe('00000005' + '6162636465000000');
    expect(decodeXdr(xdrString(16), Buffer.from('000000036869210000', 'hex').subarray(0, 8))).toBe('hi!');
  });

  it('encodes optional data as a bool then the value', () => {
    const codec = xdrOptional(xdrInt);
    expect(encodeXdr(codec, null).toString('hex')).toBe('00000000');
    expect(encodeXdr(codec, -2).toString('hex')).toBe('00000001fffffffe');
    expect(decodeXdr(codec, encodeXdr(codec, 7))).toBe(7);
  });

  it('round-trips unsigned hypers beyond 2^53', () => {
    expect(decodeXdr(xdrUhyper, encodeXdr(xdrUhyper, 2n ** 63n + 5n))).toBe(2n ** 63n + 5n);
  });

  it('rejects lengths beyond the maximum, counts beyond the bytes left, and trailing bytes', () => {
    expect(() => encodeXdr(xdrString(3), 'four')).toThrow(RangeError);
    expect(() => decodeXdr(xdrString(3), Buffer.from('0000000461626364', 'hex'))).toThrow(RangeError);
    expect(() => decodeXdr(xdrArray(xdrInt, 1_000_000), Buffer.from('000f4240', 'hex'))).toThrow(RangeError);
    expect(() => decodeXdr(xdrInt, Buffer.alloc(8))).toThrow(RangeError);
  });

  it('lays out remote_nonnull_domain as name, 16 uuid bytes, id', () => {
    const uuid = '6695eb01-f6a4-8304-79aa-97f2502e193f';
    const bytes = encodeXdr(DomainRef, { name: 'test', uuid: uuidBytes(uuid), id: 1 });
    expect(bytes.toString('hex')).toBe('00000004' + '74657374' + uuid.replace(/-/g, '') + '00000001');
    expect(uuidString(decodeXdr(DomainRef, bytes).uuid)).toBe(uuid);
  });
});

describe('packet header', () => {
  it('is a length word counting itself, then program, version, procedure, type, serial, status', () => {
    const body = encodeXdr(Procedures.connectOpen.args, { name: 'test:///default', flags: 0 });
    const packet = encodePacket({ program: REMOTE_PROGRAM, version: 1, procedure: 1, type: MessageType.CALL, serial: 7, status: MessageStatus.OK }, body);
    expect(packet.readUInt32BE(0)).toBe(packet.length);
    expect(packet.subarray(4, HEADER_BYTES).toString('hex')).toBe('20008086' + '00000001' + '00000001' + '00000000' + '00000007' + '00000000');
    expect(decodeHeader(packet)).toEqual({ program: REMOTE_PROGRAM, version: 1, procedure: 1, type: 0, serial: 7, status: 0 });
  });
});

describe('XDR unions and doubles', () => {
  it('encodes a union as its int discriminant then the arm, and refuses an unknown arm', () => {
    const codec = xdrUnion({ 1: xdrInt, 5: xdrDouble });
    expect(encodeXdr(codec, { type: 1, value: -1 }).toString('hex')).toBe('00000001ffffffff');
    expect(encodeXdr(codec, { type: 5, value: 1.5 }).toString('hex')).toBe('000000053ff8000000000000');
    expect(decodeXdr(codec, Buffer.from('000000053ff8000000000000', 'hex'))).toEqual({ type: 5, value: 1.5 });
    expect(() => decodeXdr(codec, Buffer.from('0000000200000000', 'hex'))).toThrow(RangeError);
  });
});

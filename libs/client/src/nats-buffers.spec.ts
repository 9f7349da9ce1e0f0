import { randomBytes } from 'node:crypto';
import { Kind, Parser, ProtocolHandler, type ParserEvent } from '@nats-io/nats-core/internal';
import { describe, expect, it } from 'vitest';
import { releaseNatsPayload, tuneNatsBuffers } from './nats-buffers.js';

const flushOf = () => (ProtocolHandler.prototype as unknown as { flushPending?: () => void }).flushPending;
const untunedFlush = flushOf();

/** Parses `wire` fed in socket-read sized pieces; the MSG events. */
function parseInPieces(wire: Buffer, piece: number): ParserEvent[] {
  const events: ParserEvent[] = [];
  const parser = new Parser({ push: (event: ParserEvent) => events.push(event) });
  for (let at = 0; at < wire.length; at += piece) parser.parse(wire.subarray(at, at + piece));
  return events.filter((event) => event.kind === Kind.MSG);
}

describe('tuneNatsBuffers', () => {
  it('assembles a large message in one buffer that holds it, byte for byte, around a small one; a released one is reused', () => {
    tuneNatsBuffers();
    tuneNatsBuffers();
    const headers = Buffer.from('NATS/1.0\r\nVirt-Offset: 0\r\n\r\n');
    const payload = randomBytes(960 * 1024 + 7);
    const size = headers.length + payload.length;
    const message = (reply: string) => [Buffer.from(`HMSG a.b 1 ${reply}${headers.length} ${size}\r\n`), headers, payload, Buffer.from('\r\n')];
    const events = parseInPieces(Buffer.concat([...message('_INBOX.x '), Buffer.from('MSG c 2 3\r\nabc\r\n'), ...message('')]), 65_536);
    expect(events).toHaveLength(3);
    for (const event of [events[0]!, events[2]!]) {
      expect(Buffer.from(event.data!).equals(Buffer.concat([headers, payload]))).toBe(true);
      // the doubling buffer would hold it in up to twice its size
      expect(event.data!.buffer.byteLength).toBeLessThanOrEqual(1024 * 1024);
    }
    expect(events[2]!.data!.buffer).not.toBe(events[0]!.data!.buffer);
    expect(Buffer.from(events[1]!.data!).toString()).toBe('abc');
    releaseNatsPayload(events[0]!.data!);
    releaseNatsPayload(events[0]!.data!);
    const [again, other] = parseInPieces(Buffer.concat([...message(''), ...message('')]), 65_536);
    expect(again!.data!.buffer).toBe(events[0]!.data!.buffer);
    expect(other!.data!.buffer).not.toBe(events[0]!.data!.buffer);
    expect(Buffer.from(again!.data!).equals(Buffer.concat([headers, payload]))).toBe(true);
  });

  it('replaces the flush it patches (a nats.js without one would silently keep packing)', () => {
    tuneNatsBuffers();
    expect(untunedFlush).toBeTypeOf('function');
    expect(flushOf()).not.toBe(untunedFlush);
  });
});

import { randomBytes } from 'node:crypto';
import { DataBuffer, Kind, Parser, ProtocolHandler, type ParserEvent } from '@nats-io/nats-core/internal';
import { describe, expect, it } from 'vitest';
import { natsChunkBuffer, releaseNatsPayload, tuneNatsBuffers, whenNatsWritten } from './nats-buffers.js';

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

  it('gives an outbound chunk back only after the socket has written it, and hands it out again afterwards', () => {
    tuneNatsBuffers();
    const chunk = natsChunkBuffer(960 * 1024);
    chunk.fill(7);
    const done: unknown[] = [];
    whenNatsWritten(chunk, () => {
      done.push(chunk);
      releaseNatsPayload(chunk);
    });
    const writes: { piece: Uint8Array; callback: () => void }[] = [];
    const socket = { cork() {}, uncork() {}, write: (piece: Uint8Array, callback: () => void) => writes.push({ piece, callback }) };
    const outbound = new DataBuffer();
    outbound.fill(Buffer.from('HPUB a 10 983050\r\n'), Buffer.alloc(10), chunk, Buffer.from('\r\n'));
    const handler = { infoReceived: true, connected: true, outbound, transport: { socket, isClosed: false } };
    (ProtocolHandler.prototype as unknown as { flushPending(this: unknown): void }).flushPending.call(handler);
    expect(writes.some((write) => write.piece === chunk)).toBe(true);
    // written by the socket later: until then the buffer is not handed out again
    expect(natsChunkBuffer(960 * 1024).buffer).not.toBe(chunk.buffer);
    expect(done).toHaveLength(0);
    writes.forEach((write) => write.callback());
    expect(done).toHaveLength(1);
    expect(done[0]).toBe(chunk);
    expect(natsChunkBuffer(960 * 1024).buffer).toBe(chunk.buffer);
  });
});

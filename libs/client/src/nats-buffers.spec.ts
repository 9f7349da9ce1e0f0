import { randomBytes } from 'node:crypto';
import { DataBuffer, Kind, Parser, ProtocolHandler, type ParserEvent } from '@nats-io/nats-core/internal';
import { describe, expect, it } from 'vitest';
import { NodeTransport } from '@nats-io/transport-node/lib/node_transport.js';
import { natsChunkBuffer, natsReadBuffer, releaseNatsPayload, tuneNatsBuffers, whenNatsWritten } from './nats-buffers.js';

const dialOf = () => (NodeTransport.prototype as unknown as { dial?: () => void }).dial;
const untunedDial = dialOf();
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

  it('keeps what a message holds when the socket reads the next bytes into the same buffer', () => {
    tuneNatsBuffers();
    expect(untunedDial).toBeTypeOf('function');
    expect(dialOf()).not.toBe(untunedDial);
    const headers = Buffer.from('NATS/1.0\r\nVirt-Offset: 0\r\n\r\n');
    const big = randomBytes(400 * 1024);
    const bigSize = headers.length + big.length;
    const wire = Buffer.concat([
      Buffer.from('MSG _INBOX.abc.1 7 5\r\nhello\r\n'),
      Buffer.from(`HMSG virt.v1.n.upload.s 3 _INBOX.reply.9 ${headers.length} ${bigSize}\r\n`),
      headers,
      big,
      Buffer.from('\r\nMSG a.b 2 _INBOX.r.2 3\r\nabc\r\n'),
      Buffer.from(`HMSG spans.reads 4 ${headers.length} ${bigSize}\r\n`),
      headers,
      big,
      Buffer.from('\r\n'),
    ]);
    const events: ParserEvent[] = [];
    const parser = new Parser({ push: (event: ParserEvent) => events.push(event) });
    // reads of 600 KiB into one buffer, overwritten by the next read as a socket's onread does
    const read = natsReadBuffer(600 * 1024);
    for (let at = 0; at < wire.length; at += read.length) {
      const bytes = wire.copy(read, 0, at);
      parser.parse(read.subarray(0, bytes));
      read.fill(0x5a);
    }
    const msgs = events.filter((event) => event.kind === Kind.MSG);
    expect(msgs.map((event) => Buffer.from(event.msg!.subject).toString())).toEqual(['_INBOX.abc.1', 'virt.v1.n.upload.s', 'a.b', 'spans.reads']);
    expect(msgs.map((event) => event.msg!.reply && Buffer.from(event.msg!.reply).toString())).toEqual([undefined, '_INBOX.reply.9', '_INBOX.r.2', undefined]);
    expect(Buffer.from(msgs[0]!.data!).toString()).toBe('hello');
    expect(Buffer.from(msgs[2]!.data!).toString()).toBe('abc');
    for (const event of [msgs[1]!, msgs[3]!]) expect(Buffer.from(event.data!).equals(Buffer.concat([headers, big]))).toBe(true);
  });
});

import { createConnection, type Socket } from 'node:net';
import { deferred, Kind, Parser, ProtocolHandler, State, type ParserEvent } from '@nats-io/nats-core/internal';
import { NodeTransport } from '@nats-io/transport-node/lib/node_transport.js';

/** Pending output from which a flush writes the pieces as they are (one writev) instead of packing them into a new buffer. */
const WRITEV_BYTES = 64 * 1024;

/** What the outbound patch reaches of nats.js 3.4: the private flush and the node transport's socket. */
type Flushing = Pick<ProtocolHandler, 'outbound' | 'infoReceived' | 'connected'> & { transport: { socket?: Socket; isClosed?: boolean } };

/** Inbound payloads of this size class (a volume chunk) take their buffer from a few kept for reuse (releaseNatsPayload). */
const POOLED_BYTES = 1024 * 1024;
const POOL_LIMIT = 16;
const pooled = new WeakSet<ArrayBufferLike>();
const free: ArrayBuffer[] = [];

function payloadBuffer(size: number): ArrayBuffer {
  if (size > POOLED_BYTES || size < POOLED_BYTES / 4) return Buffer.allocUnsafeSlow(size).buffer as ArrayBuffer;
  const reused = free.pop();
  if (reused) return reused;
  const fresh = Buffer.allocUnsafeSlow(POOLED_BYTES).buffer as ArrayBuffer;
  pooled.add(fresh);
  return fresh;
}

/**
 * Gives a received message's payload buffer back for the next large message; only for a caller that holds the last reference
 * (the message and its data are not used afterwards). Payloads not from the pool are left to the GC.
 */
export function releaseNatsPayload(data: Uint8Array): void {
  if (pooled.has(data.buffer) && free.length < POOL_LIMIT && !free.includes(data.buffer as ArrayBuffer)) free.push(data.buffer as ArrayBuffer);
}

/** Outbound payloads whose buffer goes back to the pool once the socket has written them (whenNatsWritten). */
const onWritten = new WeakMap<ArrayBufferLike, () => void>();

/** A buffer for an outbound volume chunk, from the same pool; it comes back through whenNatsWritten + releaseNatsPayload. */
export function natsChunkBuffer(size: number): Uint8Array {
  return new Uint8Array(payloadBuffer(size), 0, size);
}

/**
 * Runs `done` once the socket has written `data`, a payload about to be published (call it first: a publish may flush at once),
 * through the tuned flush's writev; never when nats.js packs it into a copy instead (then the GC frees it).
 */
export function whenNatsWritten(data: Uint8Array, done: () => void): void {
  onWritten.set(data.buffer, done);
}

/** Each NATS socket reads into one buffer of this size, used again by every read (Node's own reads are a fresh 64 KiB each). */
const READ_BUFFER_BYTES = 1024 * 1024;
/** The read buffers: nothing may keep a view of them past the parse of the read (see copyOutOfReads). */
const readBuffers = new WeakSet<ArrayBufferLike>();

/** A socket read buffer whose bytes a parser copies out of what it dispatches (exported for the spec). */
export function natsReadBuffer(size = READ_BUFFER_BYTES): Buffer {
  const buffer = Buffer.allocUnsafeSlow(size);
  readBuffers.add(buffer.buffer);
  return buffer;
}
/** Small payloads and subjects copied out of a read buffer share slabs of this size (never written twice). */
const COPY_SLAB_BYTES = 64 * 1024;
let copySlab = Buffer.allocUnsafeSlow(COPY_SLAB_BYTES);
let copyUsed = 0;

function copyOut(view: Uint8Array): Uint8Array {
  if (view.length >= POOLED_BYTES / 4) {
    const copy = new Uint8Array(payloadBuffer(view.length), 0, view.length);
    copy.set(view);
    return copy;
  }
  if (view.length > COPY_SLAB_BYTES / 4) return Uint8Array.prototype.slice.call(view);
  if (COPY_SLAB_BYTES - copyUsed < view.length) {
    copySlab = Buffer.allocUnsafeSlow(COPY_SLAB_BYTES);
    copyUsed = 0;
  }
  const copy = copySlab.subarray(copyUsed, copyUsed + view.length);
  copy.set(view);
  copyUsed += view.length;
  return copy;
}

/**
 * A message parsed from a read buffer has its payload, subject and reply subject as views of it, which nats.js keeps (a queued
 * message, a lazily decoded subject): they are copied out before the message is dispatched. INFO and -ERR are decoded at once.
 */
function copyOutOfReads(event: ParserEvent): ParserEvent {
  if (event.kind !== Kind.MSG || !event.msg) return event;
  const { msg } = event;
  if (readBuffers.has(msg.subject.buffer)) msg.subject = copyOut(msg.subject);
  if (msg.reply && readBuffers.has(msg.reply.buffer)) msg.reply = copyOut(msg.reply);
  return event.data && readBuffers.has(event.data.buffer) ? { ...event, data: copyOut(event.data) } : event;
}

type Dialing = { dial(hp: { hostname: string; port: number }): Promise<Socket>; setupHandlers(): void; socket?: Socket };
/** Sockets whose transport reads in its steady state; before it (the INFO peek) frames wait in a list, so they are copies. */
const steady = new WeakSet<Socket>();
const parsersCopying = new WeakSet<Parser>();

let tuned = false;

/**
 * nats.js assembles a message larger than one socket read in a buffer that grows by doubling, so a ~1 MiB volume chunk
 * costs four or five ArrayBuffers (up to 2 MiB) and as many copies, and only full GCs started by external memory pressure
 * free them. Once a payload's size is known this gives it one buffer that holds it (a pooled one for a volume chunk); a large outbound message is
 * written as its pieces (one writev), not packed into a new buffer first, so a sender must not change a payload it passed. Idempotent;
 * process-wide; written against nats-core 3.4 (pinned in package.json; nats-buffers.spec.ts checks it). The node transport's
 * socket reads into one reused buffer per connection (onread): nats.js parses each read in the microtasks that run before the
 * next one, and copyOutOfReads takes what a message keeps out of it. A TLS upgrade wraps the socket's handle and reads on its own.
 */
export function tuneNatsBuffers(): void {
  if (tuned) return;
  tuned = true;
  const parse = Parser.prototype.parse;
  Parser.prototype.parse = function (this: Parser, buf: Uint8Array): void {
    if (!parsersCopying.has(this) && readBuffers.has(buf.buffer)) {
      parsersCopying.add(this);
      const dispatcher = this.dispatcher;
      this.dispatcher = { push: (event: ParserEvent) => dispatcher.push(copyOutOfReads(event)) };
    }
    parse.call(this, buf);
    const { msgBuf, ma } = this;
    if (this.state !== State.MSG_PAYLOAD || !msgBuf || msgBuf.capacity >= ma.size) return;
    const sized = payloadBuffer(ma.size);
    const held = msgBuf.bytes({ copy: false });
    // The parser appends by reslicing from offset 0 of the buffer while it has room, so the view starts at 0.
    msgBuf._buf = new Uint8Array(sized, 0, held.length);
    msgBuf._buf.set(held);
    msgBuf._off = 0;
  };
  const transport = NodeTransport.prototype as unknown as Dialing;
  const setupHandlers = transport.setupHandlers;
  transport.setupHandlers = function (this: Dialing): void {
    if (this.socket) steady.add(this.socket);
    setupHandlers.call(this);
  };
  transport.dial = function (hp) {
    const dialed = deferred<Socket>();
    let dialError: Error | undefined;
    const buffer = natsReadBuffer();
    const onread = {
      buffer,
      callback: (bytes: number) => {
        const frame = buffer.subarray(0, bytes);
        socket.emit('data', steady.has(socket) ? frame : Buffer.from(frame));
        return true;
      },
    };
    const socket: Socket = createConnection({ port: hp.port, host: hp.hostname, onread }, () => {
      dialed.resolve(socket);
      socket.removeAllListeners();
    });
    socket.on('error', (error) => (dialError = error));
    socket.on('close', () => {
      socket.removeAllListeners();
      dialed.reject(dialError);
    });
    socket.setNoDelay(true);
    return dialed;
  };
  // Outbound, nats.js packs the queued protocol line, headers and payload into one new buffer before the socket write.
  const proto = ProtocolHandler.prototype as unknown as { flushPending(this: Flushing): void };
  const flushPending = proto.flushPending;
  proto.flushPending = function (this: Flushing): void {
    const out = this.outbound;
    const socket = this.transport.socket;
    if (!this.infoReceived || !this.connected || out.byteLength < WRITEV_BYTES || out.buffers.length < 2 || !socket || this.transport.isClosed !== false) {
      flushPending.call(this);
      return;
    }
    socket.cork();
    // Write errors surface on the read side, as in nats.js's own send.
    for (const piece of out.buffers) {
      const done = onWritten.get(piece.buffer);
      if (done) onWritten.delete(piece.buffer);
      socket.write(piece, done ? () => done() : ignoreWriteError);
    }
    socket.uncork();
    out.reset();
  };
}

function ignoreWriteError(): void {}

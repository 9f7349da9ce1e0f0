import { Parser, State } from '@nats-io/nats-core/internal';

let tuned = false;

/**
 * nats.js assembles a message larger than one socket read in a buffer that grows by doubling, so a ~1 MiB volume chunk
 * costs four or five ArrayBuffers (up to 2 MiB) and as many copies, and only full GCs started by external memory pressure
 * free them. Once a payload's size is known this gives it one buffer of exactly that size. Idempotent; process-wide; written against nats-core 3.4 (pinned in package.json; nats-buffers.spec.ts checks it).
 */
export function tuneNatsBuffers(): void {
  if (tuned) return;
  tuned = true;
  const parse = Parser.prototype.parse;
  Parser.prototype.parse = function (this: Parser, buf: Uint8Array): void {
    parse.call(this, buf);
    const { msgBuf, ma } = this;
    if (this.state !== State.MSG_PAYLOAD || !msgBuf || msgBuf.capacity >= ma.size) return;
    const sized = Buffer.allocUnsafeSlow(ma.size);
    const held = msgBuf.bytes({ copy: false });
    sized.set(held);
    // The parser appends by reslicing from offset 0 of the buffer while it has room, so the view starts at 0.
    msgBuf._buf = new Uint8Array(sized.buffer, 0, held.length);
    msgBuf._off = 0;
  };
}

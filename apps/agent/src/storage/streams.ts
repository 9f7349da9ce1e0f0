import { createHash, randomBytes } from 'node:crypto';
import { headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { StreamActions, StreamHeaders, Subjects, VirtError, type StreamSession } from '@virtbus/api-contract';
import { errorEnvelope, natsChunkBuffer, releaseNatsPayload, resultEnvelope, whenNatsWritten } from '@virtbus/client';
import type { ReadSource, WriteTarget } from '@virtbus/drivers';
import type { Logger } from 'pino';
import type { OperationHandle, OperationManager } from './operations.js';

/** Largest chunk of either direction: past ~1 MiB the round trips no longer dominate. */
const MAX_CHUNK_BYTES = 1024 * 1024;
/** Room left in a message for the subject, reply inbox and chunk headers. */
const HEADROOM_BYTES = 8 * 1024;
/** Disk writes (upload) or reads (download) of one session running at once; the gateway's window is no larger. */
export const IO_WINDOW = 8;
/** Chunks a download reads ahead of the pulls. */
const READ_AHEAD = 2;
/** A session with no chunk for this long is aborted (client gone without saying so). */
const IDLE_TIMEOUT_MS = 30_000;

/** Chunk size for a server's max_payload: a multiple of 64 KiB that fits with its headers, at most 1 MiB. */
export function chunkBytesFor(maxPayload: number | undefined): number {
  const limit = Math.min(MAX_CHUNK_BYTES, (maxPayload ?? MAX_CHUNK_BYTES) - HEADROOM_BYTES);
  const aligned = Math.floor(limit / 65_536) * 65_536;
  return aligned > 0 ? aligned : Math.max(1024, limit);
}

const errorReply = (error: unknown) => errorEnvelope(error, 'OPERATION_FAILED');

const errorHeaders = () => {
  const headers = natsHeaders();
  headers.set(StreamHeaders.Action, 'error');
  return headers;
};

/**
 * Volume content over NATS without large messages: the gateway sends (upload) or pulls (download) one chunk per
 * request with a few requests in flight. The agent runs up to IO_WINDOW disk writes or reads of a session at once,
 * hashes in offset order and answers each request when its chunk is on disk (upload) or read (download), so the
 * acknowledgements are the flow control and memory stays at a window of chunks per session.
 */
export class ContentStreams {
  private readonly sessions = new Set<(failure?: unknown) => Promise<void>>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly node: string,
    private readonly operations: OperationManager,
    private readonly logger: Logger,
  ) {}

  private get chunkBytes(): number {
    return chunkBytesFor(this.nc.info?.max_payload);
  }

  upload(pool: string, volume: string, target: WriteTarget, expectedBytes?: number): StreamSession {
    const session = randomBytes(12).toString('hex');
    const subject = Subjects.uploadSession(this.node, session);
    const op = this.operations.begin(`Upload to volume ${volume} of pool ${pool}`, { pool, volume }, expectedBytes ?? 0);
    const hash = createHash('sha256');
    /** Bytes accepted (offset checked, hashed, write started) and bytes on disk. */
    let received = 0;
    let written = 0;
    let failed: unknown;
    /** Writes in flight; they never reject (a failed write ends the session itself). */
    const writes = new Set<Promise<void>>();
    const { sub, end, fail, touch, ended } = this.open('upload', subject, op, async (failure) => {
      failed = failure;
      if (failure === undefined) return;
      await Promise.allSettled(writes);
      await target.abort();
      op.fail(failure);
    });

    const writeChunk = async (data: Uint8Array, offset: number) => {
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await target.handle.write(data, done, data.length - done, offset + done);
        done += bytesWritten;
      }
    };

    void (async () => {
      for await (const msg of sub) {
        if (ended()) break;
        touch();
        const action = msg.headers?.get(StreamHeaders.Action) || StreamActions.Chunk;
        try {
          if (action === StreamActions.Abort) {
            await end(new VirtError('OPERATION_FAILED', 'upload aborted by the client'));
            msg.respond(resultEnvelope(op.snapshot()));
            continue;
          }
          if (action === StreamActions.Commit) {
            await Promise.all(writes);
            if (ended()) throw new VirtError('OPERATION_FAILED', 'upload ended before the commit', { cause: failed });
            if (expectedBytes !== undefined && received !== expectedBytes) {
              throw new VirtError('INVALID_ARG', `upload ended after ${received} of ${expectedBytes} bytes`);
            }
            const sha256 = hash.digest('hex');
            await target.commit(received);
            await end();
            msg.respond(resultEnvelope(op.succeed({ sizeBytes: received, sha256 })));
            continue;
          }
          const offset = Number(msg.headers?.get(StreamHeaders.Offset) ?? 'NaN');
          if (offset !== received) throw new VirtError('INVALID_ARG', `chunk at offset ${offset}, expected ${received}`);
          if (target.maxBytes !== undefined && received + msg.data.length > target.maxBytes) {
            throw new VirtError('INVALID_ARG', `upload exceeds the volume size of ${target.maxBytes} bytes`);
          }
          // Chunks arrive in offset order, so hashing here keeps the digest in order while the writes overlap.
          const data = msg.data;
          hash.update(data);
          received += data.length;
          const acknowledged = received;
          const write: Promise<void> = writeChunk(data, offset)
            .finally(() => releaseNatsPayload(data))
            .then(
              () => {
                written += data.length;
                op.progress(written, Math.max(received, expectedBytes ?? target.maxBytes ?? 0));
                if (ended()) msg.respond(errorReply(failed ?? new VirtError('OPERATION_FAILED', 'upload ended')), { headers: errorHeaders() });
                else msg.respond(resultEnvelope({ received: acknowledged }));
              },
              (error: unknown) => fail(msg, error),
            )
            .catch((error: unknown) => this.logger.warn({ err: error, subject }, 'upload chunk reply failed'))
            .finally(() => writes.delete(write));
          writes.add(write);
          if (writes.size >= IO_WINDOW) await Promise.race(writes);
        } catch (error) {
          await fail(msg, error).catch((replyError: unknown) => this.logger.warn({ err: replyError, subject }, 'upload reply failed'));
        }
      }
    })();
    return { session, subject, chunkBytes: this.chunkBytes, operation: op.snapshot() };
  }

  download(pool: string, volume: string, source: ReadSource): StreamSession {
    const session = randomBytes(12).toString('hex');
    const subject = Subjects.downloadSession(this.node, session);
    const op = this.operations.begin(`Download of volume ${volume} of pool ${pool}`, { pool, volume }, source.sizeBytes);
    const chunkBytes = this.chunkBytes;
    const hash = createHash('sha256');
    /** Next offset a pull must ask for, and bytes answered so far. */
    let next = 0;
    let sent = 0;
    /** Reads in flight (settled, never rejecting), and reads started ahead of their pull by offset. */
    const reads = new Set<Promise<void>>();
    const prefetched = new Map<number, Promise<Uint8Array>>();
    const track = (read: Promise<Uint8Array>) => {
      const settled: Promise<void> = read.then(
        () => undefined,
        () => undefined,
      );
      reads.add(settled);
      void settled.then(() => reads.delete(settled));
    };
    /** Replies go out in pull order: each waits for its own read and for the reply before it. */
    let replies: Promise<void> = Promise.resolve();
    const inOrder = (reply: () => Promise<void>) => {
      replies = replies.then(reply).catch((error: unknown) => this.logger.warn({ err: error, subject }, 'download reply failed'));
    };
    const { sub, end, fail, touch, ended } = this.open('download', subject, op, async (failure) => {
      await Promise.allSettled(reads);
      await source.handle.close().catch(() => undefined);
      if (failure !== undefined) op.fail(failure);
    });

    const readChunk = async (offset: number, length: number): Promise<Uint8Array> => {
      // A pooled buffer per chunk, back in the pool once the socket has written the reply (nats.js holds it until then).
      const buffer = natsChunkBuffer(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await source.handle.read(buffer, done, length - done, offset + done);
        if (bytesRead === 0) throw new VirtError('OPERATION_FAILED', `volume ${volume} shrank during the download (${offset + done} of ${source.sizeBytes} bytes)`);
        done += bytesRead;
      }
      return buffer;
    };
    const chunkHeaders = (action: string): MsgHdrs => {
      const headers = natsHeaders();
      headers.set(StreamHeaders.Action, action);
      return headers;
    };

    void (async () => {
      for await (const msg of sub) {
        if (ended()) break;
        touch();
        if (msg.headers?.get(StreamHeaders.Action) === StreamActions.Abort) {
          inOrder(async () => {
            await end(new VirtError('OPERATION_FAILED', 'download aborted by the client'));
            msg.respond(resultEnvelope(op.snapshot()));
          });
          continue;
        }
        const offset = Number(msg.headers?.get(StreamHeaders.Offset) ?? 'NaN');
        if (offset !== next) {
          const error = new VirtError('INVALID_ARG', `pull at offset ${offset}, expected ${next}`);
          inOrder(() => fail(msg, error));
          continue;
        }
        const length = Math.min(chunkBytes, source.sizeBytes - offset);
        if (length <= 0) {
          next = Number.NaN;
          inOrder(async () => {
            if (ended()) return;
            const sha256 = hash.digest('hex');
            const headers = chunkHeaders(StreamActions.Commit);
            headers.set(StreamHeaders.Sha256, sha256);
            await end();
            op.succeed({ sizeBytes: sent, sha256 });
            msg.respond(new Uint8Array(0), { headers });
          });
          continue;
        }
        next = offset + length;
        const read = prefetched.get(offset) ?? readChunk(offset, length);
        prefetched.delete(offset);
        // Read ahead of the pulls, so a client pulling one chunk at a time still overlaps the disk with the bus.
        for (let ahead = next; prefetched.size < READ_AHEAD && ahead < source.sizeBytes; ahead += chunkBytes) {
          if (prefetched.has(ahead)) continue;
          const early = readChunk(ahead, Math.min(chunkBytes, source.sizeBytes - ahead));
          early.catch(() => undefined);
          prefetched.set(ahead, early);
          track(early);
        }
        track(read);
        inOrder(async () => {
          if (ended()) return;
          let chunk: Uint8Array;
          try {
            chunk = await read;
          } catch (error) {
            await fail(msg, error);
            return;
          }
          if (ended()) return;
          hash.update(chunk);
          sent += chunk.length;
          op.progress(sent);
          whenNatsWritten(chunk, () => releaseNatsPayload(chunk));
          msg.respond(chunk, { headers: chunkHeaders(StreamActions.Chunk) });
        });
        if (reads.size >= IO_WINDOW) await Promise.race(reads);
      }
    })();
    return { session, subject, chunkBytes, sizeBytes: source.sizeBytes, operation: op.snapshot() };
  }

  /**
   * What both directions share: the session's subscription, its end (once; `release` frees its side and fails the
   * operation on a failure), a failure answered on the request that met it, the idle timer and the operation's cancel.
   */
  private open(direction: 'upload' | 'download', subject: string, op: OperationHandle, release: (failure?: unknown) => Promise<void>) {
    const sub = this.nc.subscribe(subject);
    let ended = false;
    let idle: NodeJS.Timeout | undefined;
    const end = async (failure?: unknown) => {
      if (ended) return;
      ended = true;
      clearTimeout(idle);
      sub.unsubscribe();
      this.sessions.delete(end);
      await release(failure);
    };
    const fail = async (msg: Msg, error: unknown) => {
      this.logger.warn({ err: error, subject: msg.subject }, 'stream session failed');
      // The session is closed and the operation failed before the caller hears about it.
      await end(error);
      msg.respond(errorReply(error), { headers: errorHeaders() });
    };
    /** A request arrived: the idle timer starts again. */
    const touch = () => {
      clearTimeout(idle);
      idle = setTimeout(() => void end(new VirtError('OPERATION_TIMEOUT', `${direction} session idle`)), IDLE_TIMEOUT_MS);
    };
    touch();
    op.signal.addEventListener('abort', () => void end(new VirtError('OPERATION_FAILED', `${direction} cancelled`)), { once: true });
    this.sessions.add(end);
    return { sub, end, fail, touch, ended: () => ended };
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.sessions].map((end) => end(new VirtError('OPERATION_FAILED', 'agent stopping'))));
  }
}

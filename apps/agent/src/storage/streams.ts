import { createHash, randomBytes } from 'node:crypto';
import { headers as natsHeaders, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { StreamActions, StreamHeaders, Subjects, VirtError, type StreamSession } from '@virtbus/api-contract';
import type { ReadSource, WriteTarget } from '@virtbus/drivers';
import type { Logger } from 'pino';
import type { OperationManager } from './operations.js';

/** Chunk size of both directions: well under NATS' default 1 MiB max_payload. */
export const CHUNK_BYTES = 256 * 1024;
/** A session with no chunk for this long is aborted (client gone without saying so). */
const IDLE_TIMEOUT_MS = 30_000;

const errorReply = (error: unknown) =>
  JSON.stringify({ error: (error instanceof VirtError ? error : new VirtError('OPERATION_FAILED', (error as Error)?.message ?? String(error))).toBody() });

/**
 * Volume content over NATS without large messages: the gateway sends (upload) or pulls (download) one chunk
 * per request, so each acknowledged request is the flow control and memory stays at one chunk per session.
 */
export class ContentStreams {
  private readonly sessions = new Set<(failure?: unknown) => Promise<void>>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly node: string,
    private readonly operations: OperationManager,
    private readonly logger: Logger,
  ) {}

  upload(pool: string, volume: string, target: WriteTarget, expectedBytes?: number): StreamSession {
    const session = randomBytes(12).toString('hex');
    const subject = Subjects.uploadSession(this.node, session);
    const op = this.operations.begin(`Upload to volume ${volume} of pool ${pool}`, { pool, volume }, expectedBytes ?? 0);
    const hash = createHash('sha256');
    let received = 0;
    let ended = false;
    const sub = this.nc.subscribe(subject);
    const end = async (failure?: unknown) => {
      if (ended) return;
      ended = true;
      clearTimeout(idle);
      sub.unsubscribe();
      this.sessions.delete(end);
      if (failure !== undefined) {
        await target.abort();
        op.fail(failure);
      }
    };
    let idle = setTimeout(() => void end(new VirtError('OPERATION_TIMEOUT', 'upload session idle')), IDLE_TIMEOUT_MS);
    op.signal.addEventListener('abort', () => void end(new VirtError('OPERATION_FAILED', 'upload cancelled')), { once: true });
    this.sessions.add(end);

    void this.serve(sub, async (msg) => {
      clearTimeout(idle);
      idle = setTimeout(() => void end(new VirtError('OPERATION_TIMEOUT', 'upload session idle')), IDLE_TIMEOUT_MS);
      const action = msg.headers?.get(StreamHeaders.Action) || StreamActions.Chunk;
      if (action === StreamActions.Abort) {
        await end(new VirtError('OPERATION_FAILED', 'upload aborted by the client'));
        return JSON.stringify({ result: op.snapshot() });
      }
      if (action === StreamActions.Commit) {
        if (expectedBytes !== undefined && received !== expectedBytes) {
          throw new VirtError('INVALID_ARG', `upload ended after ${received} of ${expectedBytes} bytes`);
        }
        const sha256 = hash.digest('hex');
        await target.commit(received);
        await end();
        return JSON.stringify({ result: op.succeed({ sizeBytes: received, sha256 }) });
      }
      const offset = Number(msg.headers?.get(StreamHeaders.Offset) ?? 'NaN');
      if (offset !== received) throw new VirtError('INVALID_ARG', `chunk at offset ${offset}, expected ${received}`);
      if (target.maxBytes !== undefined && received + msg.data.length > target.maxBytes) {
        throw new VirtError('INVALID_ARG', `upload exceeds the volume size of ${target.maxBytes} bytes`);
      }
      let written = 0;
      while (written < msg.data.length) {
        const { bytesWritten } = await target.handle.write(msg.data, written, msg.data.length - written, received + written);
        written += bytesWritten;
      }
      hash.update(msg.data);
      received += msg.data.length;
      op.progress(received, Math.max(received, expectedBytes ?? target.maxBytes ?? 0));
      return JSON.stringify({ result: { received } });
    }, end);
    return { session, subject, chunkBytes: CHUNK_BYTES, operation: op.snapshot() };
  }

  download(pool: string, volume: string, source: ReadSource): StreamSession {
    const session = randomBytes(12).toString('hex');
    const subject = Subjects.downloadSession(this.node, session);
    const op = this.operations.begin(`Download of volume ${volume} of pool ${pool}`, { pool, volume }, source.sizeBytes);
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    let sent = 0;
    let ended = false;
    const sub = this.nc.subscribe(subject);
    const end = async (failure?: unknown) => {
      if (ended) return;
      ended = true;
      clearTimeout(idle);
      sub.unsubscribe();
      this.sessions.delete(end);
      await source.handle.close().catch(() => undefined);
      if (failure !== undefined) op.fail(failure);
    };
    let idle = setTimeout(() => void end(new VirtError('OPERATION_TIMEOUT', 'download session idle')), IDLE_TIMEOUT_MS);
    op.signal.addEventListener('abort', () => void end(new VirtError('OPERATION_FAILED', 'download cancelled')), { once: true });
    this.sessions.add(end);

    void this.serve(sub, async (msg) => {
      clearTimeout(idle);
      idle = setTimeout(() => void end(new VirtError('OPERATION_TIMEOUT', 'download session idle')), IDLE_TIMEOUT_MS);
      if (msg.headers?.get(StreamHeaders.Action) === StreamActions.Abort) {
        await end(new VirtError('OPERATION_FAILED', 'download aborted by the client'));
        return JSON.stringify({ result: op.snapshot() });
      }
      const offset = Number(msg.headers?.get(StreamHeaders.Offset) ?? 'NaN');
      if (offset !== sent) throw new VirtError('INVALID_ARG', `pull at offset ${offset}, expected ${sent}`);
      const length = Math.min(CHUNK_BYTES, source.sizeBytes - sent);
      const { bytesRead } = length > 0 ? await source.handle.read(buffer, 0, length, sent) : { bytesRead: 0 };
      const headers = natsHeaders();
      if (bytesRead === 0) {
        const sha256 = hash.digest('hex');
        headers.set(StreamHeaders.Sha256, sha256);
        headers.set(StreamHeaders.Action, StreamActions.Commit);
        await end();
        op.succeed({ sizeBytes: sent, sha256 });
        return { data: new Uint8Array(0), headers };
      }
      const chunk = buffer.subarray(0, bytesRead);
      hash.update(chunk);
      sent += bytesRead;
      op.progress(sent);
      headers.set(StreamHeaders.Action, StreamActions.Chunk);
      return { data: chunk, headers };
    }, end);
    return { session, subject, chunkBytes: CHUNK_BYTES, sizeBytes: source.sizeBytes, operation: op.snapshot() };
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.sessions].map((end) => end(new VirtError('OPERATION_FAILED', 'agent stopping'))));
  }

  /** One request at a time, in order; an error ends the session and goes back to the caller as an error reply. */
  private async serve(
    sub: Subscription,
    handle: (msg: Msg) => Promise<string | { data: Uint8Array; headers: ReturnType<typeof natsHeaders> }>,
    end: (failure?: unknown) => Promise<void>,
  ): Promise<void> {
    for await (const msg of sub) {
      try {
        const reply = await handle(msg);
        if (typeof reply === 'string') msg.respond(reply);
        else msg.respond(reply.data, { headers: reply.headers });
      } catch (error) {
        this.logger.warn({ err: error, subject: msg.subject }, 'stream session failed');
        // The session is closed and the operation failed before the caller hears about it.
        await end(error);
        const headers = natsHeaders();
        headers.set(StreamHeaders.Action, 'error');
        msg.respond(errorReply(error), { headers });
      }
    }
  }
}

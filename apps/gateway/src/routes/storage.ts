import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { headers as natsHeaders, type Msg, type NatsConnection } from '@nats-io/transport-node';
import Type from 'typebox';
import { decodeReply, releaseNatsPayload } from '@virtbus/client';
import {
  type AsyncOperation,
  ErrorBody,
  NodeName,
  ObjectName,
  StreamActions,
  StreamHeaders,
  VirtError,
  compileValidator,
  httpPath,
  Operations,
  type ErrorCode,
  type StreamSession,
} from '@virtbus/api-contract';
import { AgentCallCodes, bytesRouteOptions, errorResponses, handRouteDocument, ref } from '../schemas.js';

const VolumeParams = Type.Object({ node: NodeName, pool: ObjectName, vol: ObjectName }, { additionalProperties: false });
const UploadQuery = Type.Object(
  { create: Type.Optional(Type.Boolean({ description: 'Create the volume when it does not exist (else 404 NO_STORAGE_VOL)' })) },
  { additionalProperties: false },
);

const PoolCodes: ErrorCode[] = [...AgentCallCodes, 'NO_STORAGE_POOL', 'OPERATION_INVALID'];
const VolumeCodes: ErrorCode[] = [...PoolCodes, 'NO_STORAGE_VOL', 'OPERATION_UNSUPPORTED'];

/** Upload chunks in flight at once: enough to keep the agent's disk and the bus busy, small enough to bound memory. */
const UPLOAD_WINDOW = 8;
/**
 * Download pulls in flight: the agent answers them in order from its read-ahead, so the bus round trip of one pull overlaps
 * the transfer of the others; bounded, the gateway holds at most this many chunks. Re-measured (tools/bench/stream-probe.ts,
 * 2-core host under load): 4 costs the gateway no more CPU per MiB than 1, and 256 KiB chunks cost NATS and the agent more than ~1 MiB.
 */
const DOWNLOAD_WINDOW = 4;
/** Room left in a message for the subject, reply inbox and chunk headers. */
const HEADROOM_BYTES = 8 * 1024;
const CHUNK_TIMEOUT_MS = 30_000;
/** Volume uploads are bounded by the pool, not by the JSON body limit. */
const CONTENT_BODY_LIMIT = Number.MAX_SAFE_INTEGER;

const errorBody = compileValidator(ErrorBody);

/** A chunk reply is bytes, or a JSON error marked in the headers. */
function checkChunkReply(reply: Msg): Msg {
  if (reply.headers?.get(StreamHeaders.Action) !== 'error') return reply;
  const parsed = JSON.parse(new TextDecoder().decode(reply.data)) as { error?: unknown };
  throw errorBody.check(parsed.error) ? VirtError.fromBody(parsed.error) : new VirtError('INTERNAL', 'malformed stream error');
}

function jsonResult<T>(reply: Msg): T {
  return decodeReply(checkChunkReply(reply).data, 'the volume stream') as T;
}

/** The agent's chunk size, smaller if this gateway's server takes smaller messages. */
function uploadChunkBytes(nc: NatsConnection, session: StreamSession): number {
  const maxPayload = nc.info?.max_payload;
  return maxPayload === undefined ? session.chunkBytes : Math.max(1, Math.min(session.chunkBytes, maxPayload - HEADROOM_BYTES));
}

/**
 * Sends the body in chunks with up to UPLOAD_WINDOW unacknowledged; the HTTP body is read only as acknowledgements free the
 * window. The HTTP pieces are copied into UPLOAD_WINDOW + 1 chunk buffers used in turn: an acknowledged chunk has left this
 * process (the agent has it), so its buffer takes the next one, and a transfer allocates no chunk memory after its first.
 */
async function sendUpload(nc: NatsConnection, session: StreamSession, body: Readable): Promise<AsyncOperation> {
  const chunkBytes = uploadChunkBytes(nc, session);
  const inFlight: { request: Promise<Msg>; buffer: Buffer }[] = [];
  const free: Buffer[] = [];
  let offset = 0;
  let chunk: Buffer | undefined;
  let filled = 0;
  const send = (buffer: Buffer, length: number) => {
    const headers = natsHeaders();
    headers.set(StreamHeaders.Offset, String(offset));
    offset += length;
    const request = nc.request(session.subject, buffer.subarray(0, length), { timeout: CHUNK_TIMEOUT_MS, headers });
    // A rejection is handled when the window reaches it; this keeps Node from calling it unhandled first.
    request.catch(() => undefined);
    inFlight.push({ request, buffer });
  };
  const drainTo = async (size: number) => {
    while (inFlight.length > size) {
      const head = inFlight.shift()!;
      checkChunkReply(await head.request);
      free.push(head.buffer);
    }
  };
  for await (const piece of body as AsyncIterable<Buffer>) {
    for (let at = 0; at < piece.length; ) {
      chunk ??= free.pop() ?? Buffer.allocUnsafeSlow(chunkBytes);
      const copied = piece.copy(chunk, filled, at);
      at += copied;
      filled += copied;
      if (filled < chunkBytes) continue;
      send(chunk, filled);
      chunk = undefined;
      filled = 0;
      await drainTo(UPLOAD_WINDOW - 1);
    }
  }
  if (chunk && filled > 0) send(chunk, filled);
  await drainTo(0);
  const headers = natsHeaders();
  headers.set(StreamHeaders.Action, StreamActions.Commit);
  return jsonResult<AsyncOperation>(await nc.request(session.subject, new Uint8Array(0), { timeout: CHUNK_TIMEOUT_MS, headers }));
}

function abortSession(nc: NatsConnection, session: StreamSession): void {
  const headers = natsHeaders();
  headers.set(StreamHeaders.Action, StreamActions.Abort);
  nc.request(session.subject, new Uint8Array(0), { timeout: CHUNK_TIMEOUT_MS, headers }).catch(() => undefined);
}

/**
 * Pulls the volume with up to DOWNLOAD_WINDOW pulls in flight (offsets known from the size and the chunk size), yielding the
 * chunks in order; the window only moves when the HTTP response takes a chunk. Without a size it pulls one at a time.
 */
async function* pullDownload(nc: NatsConnection, session: StreamSession, onDone: (sha256: string) => void, unwritten: () => number): AsyncGenerator<Buffer> {
  const size = session.sizeBytes;
  const window = size === undefined ? 1 : DOWNLOAD_WINDOW;
  const pulls: { offset: number; reply: Promise<Msg> }[] = [];
  let next = 0;
  let lastPulled = false;
  let done = false;
  /** Chunks yielded and not yet given back, with the byte count yielded up to the end of each. */
  const held: { end: number; data: Uint8Array }[] = [];
  let yielded = 0;
  const pull = (offset: number) => {
    const headers = natsHeaders();
    headers.set(StreamHeaders.Offset, String(offset));
    const reply = nc.request(session.subject, new Uint8Array(0), { timeout: CHUNK_TIMEOUT_MS, headers });
    reply.catch(() => undefined);
    pulls.push({ offset, reply });
  };
  const fill = () => {
    while (!lastPulled && pulls.length < window) {
      pull(next);
      // The pull at the size gets the commit (sha256); an unknown size pulls one by one until it comes.
      if (size === undefined) lastPulled = true;
      else if (next >= size) lastPulled = true;
      else next = Math.min(size, next + session.chunkBytes);
    }
  };
  try {
    for (;;) {
      fill();
      const head = pulls.shift();
      if (!head) throw new VirtError('INTERNAL', 'download ended without a commit');
      const reply = checkChunkReply(await head.reply);
      if (reply.headers?.get(StreamHeaders.Action) === StreamActions.Commit) {
        done = true;
        onDone(reply.headers.get(StreamHeaders.Sha256));
        return;
      }
      if (size === undefined) {
        next = head.offset + reply.data.length;
        lastPulled = false;
      } else if (reply.data.length !== Math.min(session.chunkBytes, size - head.offset)) {
        throw new VirtError('OPERATION_FAILED', `chunk at ${head.offset} has ${reply.data.length} bytes`);
      }
      // A yielded chunk is in the kernel once the bytes yielded after it cover all the stream and the response still hold
      // (their counts include HTTP framing, so this errs late): its buffer goes back to nats.js's pool for the next chunk.
      // A few at most wait for that; older ones are left to the GC.
      const written = yielded - unwritten();
      while (held.length > 0 && held[0]!.end <= written) releaseNatsPayload(held.shift()!.data);
      if (held.length >= DOWNLOAD_WINDOW) held.shift();
      yielded += reply.data.length;
      held.push({ end: yielded, data: reply.data });
      yield Buffer.from(reply.data.buffer, reply.data.byteOffset, reply.data.byteLength);
    }
  } finally {
    // The client went away before the end: tell the agent to close the file.
    if (!done) abortSession(nc, session);
  }
}

// the hand routes' path, operationId and tag come from their table entries (served: 'hand')
const upload = Operations['volume.upload'];
const download = Operations['volume.download'];

export const storageRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // Volume content arrives as a raw stream that is never buffered whole.
  app.addContentTypeParser('application/octet-stream', { bodyLimit: CONTENT_BODY_LIMIT }, (_request, payload, done) => done(null, payload));

  app.put(
    httpPath(upload.http),
    {
      config: { permission: 'volume.upload', streamingBody: true },
      bodyLimit: CONTENT_BODY_LIMIT,
      schema: {
        ...handRouteDocument(
          upload,
          'Upload volume content (application/octet-stream) into an existing volume, whose capacity never changes; ?create=true makes a missing dir volume',
        ),
        params: VolumeParams,
        querystring: UploadQuery,
        response: { 200: ref('Operation'), ...errorResponses(...VolumeCodes) },
      },
    },
    async (request) => {
      const body = request.body as Readable | undefined;
      if (!body || typeof (body as Partial<Readable>).pipe !== 'function') throw new VirtError('INVALID_ARG', 'send the content as application/octet-stream');
      const length = request.headers['content-length'];
      const sizeBytes = length !== undefined && /^[0-9]{1,15}$/.test(length) ? Number(length) : undefined;
      const session = await app.agents.call(request.params.node, 'volume.upload', {
        pool: request.params.pool,
        volume: request.params.vol,
        ...(sizeBytes !== undefined ? { sizeBytes } : {}),
        ...(request.query.create ? { create: true } : {}),
      });
      const nc = await app.agents.connection();
      try {
        return await sendUpload(nc, session, body);
      } catch (error) {
        abortSession(nc, session);
        throw error;
      }
    },
  );

  app.get(
    httpPath(download.http),
    bytesRouteOptions('volume.download', download, VolumeParams, { description: 'The volume bytes', contentType: 'application/octet-stream' }, VolumeCodes),
    async (request, reply) => {
      const session = await app.agents.call(request.params.node, 'volume.download', { pool: request.params.pool, volume: request.params.vol });
      const nc = await app.agents.connection();
      let sha256 = '';
      const unwritten = () => stream.readableLength + reply.raw.writableLength;
      const stream: Readable = Readable.from(pullDownload(nc, session, (digest) => (sha256 = digest), unwritten), { objectMode: false, highWaterMark: session.chunkBytes });
      reply.header('content-type', 'application/octet-stream');
      reply.header('x-virtbus-operation', session.operation.id);
      reply.header('x-virtbus-size', String(session.sizeBytes ?? 0));
      reply.trailer('x-checksum-sha256', async () => sha256);
      // The response schema describes bytes; the stream is how they are sent.
      return reply.send(stream as never);
    },
  );
};

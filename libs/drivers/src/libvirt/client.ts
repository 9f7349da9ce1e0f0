import { readFile } from 'node:fs/promises';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { VirtError } from '@virtbus/api-contract';
import { virtErrorFromRemote } from './errors.js';
import {
  decodeHeader,
  DriverFeature,
  encodePacket,
  HEADER_BYTES,
  KEEPALIVE_PROGRAM,
  KEEPALIVE_PROTOCOL_VERSION,
  KeepaliveProcedure,
  MESSAGE_MAX,
  MessageStatus,
  MessageType,
  Procedures,
  QEMU_PROGRAM,
  REMOTE_PROGRAM,
  REMOTE_PROTOCOL_VERSION,
  RemoteError,
  type PacketHeader,
  type ProcedureArgs,
  type ProcedureName,
  type ProcedureReply,
} from './protocol.js';
import { decodeXdr, encodeXdr, type Codec } from './xdr.js';

export const DEFAULT_LIBVIRT_SOCKET = '/var/run/libvirt/libvirt-sock';

/** libvirtd's TLS port (libvirtd.conf tls_port). */
export const LIBVIRT_TLS_PORT = 16514;
/** libvirt's default x509 layout for a client (libvirt's "TLS x.509 certificate setup"); `?pkipath=DIR` holds the same three names. */
const DEFAULT_PKI = { caFile: '/etc/pki/CA/cacert.pem', certFile: '/etc/pki/libvirt/clientcert.pem', keyFile: '/etc/pki/libvirt/private/clientkey.pem' };
/** URI query parameters libvirt's remote client consumes itself (never sent to libvirtd). */
const TRANSPORT_PARAMS = ['socket', 'pkipath', 'no_verify', 'name', 'mode', 'proxy', 'auth', 'no_tty', 'command', 'netcat', 'keyfile', 'sshauth', 'known_hosts'];

/** `driver+tls://host[:port]/path`: libvirtd's TLS listener, with this client's x509 certificate. */
export interface LibvirtTls {
  host: string;
  port: number;
  /** PEM files: the CA that signed libvirtd's certificate, this client's certificate and its key. */
  caFile: string;
  certFile: string;
  keyFile: string;
  /** False with `no_verify=1`: libvirtd's certificate and host name are not checked. */
  verify: boolean;
}

export interface LibvirtClientOptions {
  /** libvirtd's unix socket (when no `tls`). */
  socket?: string;
  tls?: LibvirtTls;
  /** URI libvirtd opens for this connection (`qemu:///system`, `test:///default`, `xen:///system`, …). */
  uri: string;
  /** Per-call reply timeout. */
  callTimeoutMs?: number;
  /** Keepalive: a PING after this much silence; the connection is dropped after `keepaliveCount` silent intervals. */
  keepaliveIntervalMs?: number;
  keepaliveCount?: number;
  /** Calls in flight at once (libvirtd itself serves a few per client and queues the rest). */
  maxPending?: number;
}

/**
 * `qemu+unix:///system?socket=/path` (or a plain `qemu:///system`) → the socket; `qemu+tls://host[:port]/system[?pkipath=DIR][&no_verify=1]`
 * → libvirtd's TLS listener; with the URI libvirtd opens (no transport, no host, none of the client's own parameters).
 */
export function parseLibvirtUri(text: string): { socket?: string; tls?: LibvirtTls; uri: string } {
  const url = new URL(text);
  const [driver, transport] = url.protocol.replace(/:$/, '').split('+');
  if (!driver || (transport !== undefined && transport !== 'unix' && transport !== 'tls')) {
    throw new VirtError('INVALID_ARG', `libvirt URI ${text}: only the unix and tls transports are supported`);
  }
  const param = (name: string) => url.searchParams.get(name) ?? undefined;
  const pkipath = param('pkipath');
  const tls: LibvirtTls | undefined =
    transport === 'tls'
      ? {
          host: url.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost',
          port: url.port ? Number(url.port) : LIBVIRT_TLS_PORT,
          ...(pkipath ? { caFile: join(pkipath, 'cacert.pem'), certFile: join(pkipath, 'clientcert.pem'), keyFile: join(pkipath, 'clientkey.pem') } : DEFAULT_PKI),
          verify: param('no_verify') !== '1',
        }
      : undefined;
  const socket = param('socket') ?? DEFAULT_LIBVIRT_SOCKET;
  for (const name of TRANSPORT_PARAMS) url.searchParams.delete(name);
  const query = url.searchParams.toString();
  const uri = `${driver}://${tls ? '' : url.host}${url.pathname}${query ? `?${query}` : ''}`;
  return tls ? { tls, uri } : { socket, uri };
}

/** Where a client connects: `host:port (tls)` or the unix socket's path. */
export function libvirtdAddress(options: Pick<LibvirtClientOptions, 'socket' | 'tls'>): string {
  return options.tls ? `${options.tls.host}:${options.tls.port} (tls)` : (options.socket ?? DEFAULT_LIBVIRT_SOCKET);
}

/** After the TLS handshake libvirtd sends one byte before any packet: 1 when it accepted this client's certificate and address. */
function readCertificateVerdict(socket: Socket, where: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error) => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('close', onClose);
      if (error) {
        socket.destroy();
        reject(error);
      } else resolve();
    };
    const onReadable = () => {
      const verdict = socket.read(1) as Buffer | null;
      if (verdict) done(verdict[0] === 1 ? undefined : new VirtError('OPERATION_FAILED', `libvirtd at ${where} refused this client's certificate or address`));
    };
    const onClose = () => done(new VirtError('OPERATION_FAILED', `libvirtd at ${where} closed the TLS connection: it refused this client's certificate or address`));
    const timer = setTimeout(() => done(new VirtError('OPERATION_TIMEOUT', `libvirtd at ${where}: no certificate verdict in ${timeoutMs} ms`)), timeoutMs);
    socket.on('readable', onReadable);
    socket.once('close', onClose);
  });
}

async function readPki(tls: LibvirtTls): Promise<{ ca: Buffer; cert: Buffer; key: Buffer }> {
  try {
    const [ca, cert, key] = await Promise.all([tls.caFile, tls.certFile, tls.keyFile].map((file) => readFile(file)));
    return { ca: ca!, cert: cert!, key: key! };
  } catch (error) {
    throw new VirtError('OPERATION_FAILED', `libvirt TLS: cannot read the client's x509 files (${tls.caFile}, ${tls.certFile}, ${tls.keyFile}): ${(error as Error).message}`, { cause: error });
  }
}

interface Pending {
  procedure: string;
  resolve(body: Buffer): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/** One connection to libvirtd over its remote protocol: calls matched to replies by serial, keepalive both ways. */
export class LibvirtClient {
  private readonly pending = new Map<number, Pending>();
  private readonly pongWaiters: Array<() => void> = [];
  private serial = 0;
  private received: Buffer[] = [];
  private receivedBytes = 0;
  private lastHeard = Date.now();
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private closedError: Error | undefined;
  private readonly closedListeners = new Set<(error: Error) => void>();
  private readonly eventListeners = new Set<(procedure: number, body: Buffer) => void>();
  private readonly streams = new Map<number, LibvirtStream>();

  private constructor(
    private readonly socket: Socket,
    private readonly options: Required<Omit<LibvirtClientOptions, 'socket' | 'tls' | 'uri'>>,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.fail(new VirtError('OPERATION_FAILED', `libvirtd connection: ${error.message}`, { cause: error })));
    socket.on('close', () => this.fail(new VirtError('OPERATION_FAILED', 'libvirtd closed the connection')));
  }

  /** Connects to the socket, opens the URI and starts keepalive when libvirtd supports it. */
  static async connect(options: LibvirtClientOptions): Promise<LibvirtClient> {
    const where = libvirtdAddress(options);
    const tls = options.tls;
    const pki = tls ? await readPki(tls) : undefined;
    const socket = await new Promise<Socket>((resolve, reject) => {
      const connection = tls
        ? tlsConnect({ host: tls.host, port: tls.port, ...pki, rejectUnauthorized: tls.verify, ...(isIP(tls.host) ? {} : { servername: tls.host }) })
        : netConnect(options.socket ?? DEFAULT_LIBVIRT_SOCKET);
      const timer = setTimeout(() => connection.destroy(new Error(`connect to ${where} timed out`)), options.callTimeoutMs ?? 30_000);
      connection.once(tls ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        connection.off('error', reject);
        resolve(connection);
      });
      connection.once('error', (error) => {
        clearTimeout(timer);
        reject(new VirtError('OPERATION_FAILED', `libvirtd at ${where}: ${error.message}`, { cause: error }));
      });
    });
    if (tls) await readCertificateVerdict(socket, where, options.callTimeoutMs ?? 30_000);
    const client = new LibvirtClient(socket, {
      callTimeoutMs: options.callTimeoutMs ?? 30_000,
      keepaliveIntervalMs: options.keepaliveIntervalMs ?? 5_000,
      keepaliveCount: options.keepaliveCount ?? 5,
      maxPending: options.maxPending ?? 256,
    });
    try {
      await client.call('connectOpen', { name: options.uri, flags: 0 });
      const { supported } = await client.call('connectSupportsFeature', { feature: DriverFeature.PROGRAM_KEEPALIVE });
      if (supported === 1) client.startKeepalive();
    } catch (error) {
      client.socket.destroy();
      throw error;
    }
    return client;
  }

  /** Calls one procedure of the table and waits for its reply (`timeoutMs`: for a call that lasts, such as a migration; default callTimeoutMs). */
  call<P extends ProcedureName>(name: P, args: ProcedureArgs<P>, timeoutMs?: number): Promise<ProcedureReply<P>> {
    this.serial = (this.serial + 1) >>> 0;
    return this.callWithSerial(name, args, this.serial, timeoutMs);
  }

  /**
   * Calls a procedure that opens a stream (domainOpenConsole): libvirtd's data then comes as STREAM packets of the
   * call's serial, registered before the call leaves so none is missed.
   */
  async openStream<P extends ProcedureName>(name: P, args: ProcedureArgs<P>): Promise<LibvirtStream> {
    this.serial = (this.serial + 1) >>> 0;
    const stream = new LibvirtStream(this.serial, Procedures[name].number, (packet) => this.socket.write(packet), () => this.streams.delete(stream.serial));
    this.streams.set(stream.serial, stream);
    try {
      await this.callWithSerial(name, args, stream.serial);
    } catch (error) {
      this.streams.delete(stream.serial);
      throw error;
    }
    return stream;
  }

  /**
   * Calls a procedure whose data libvirtd sends back on a stream (domainScreenshot) and collects it: the call's reply
   * and at most `maxBytes` of data within the call timeout; the end is acknowledged so libvirtd frees the stream.
   */
  async readStream<P extends ProcedureName>(name: P, args: ProcedureArgs<P>, maxBytes: number): Promise<{ reply: ProcedureReply<P>; data: Buffer }> {
    this.serial = (this.serial + 1) >>> 0;
    const chunks: Buffer[] = [];
    let size = 0;
    const stream = new LibvirtStream(this.serial, Procedures[name].number, (packet) => this.socket.write(packet), () => this.streams.delete(stream.serial));
    const ended = new Promise<void>((resolve, reject) => stream.onEnd((error) => (error ? reject(error) : resolve())));
    // awaited after the call's reply; an end before that must not count as unhandled
    ended.catch(() => undefined);
    stream.onData((chunk) => {
      size += chunk.length;
      if (size > maxBytes) stream.abort(new VirtError('OPERATION_FAILED', `libvirt ${name}: stream larger than ${maxBytes} bytes`));
      else chunks.push(chunk);
    });
    this.streams.set(stream.serial, stream);
    let reply: ProcedureReply<P>;
    try {
      reply = await this.callWithSerial(name, args, stream.serial);
    } catch (error) {
      this.streams.delete(stream.serial);
      throw error;
    }
    // bounded like a call: a stream libvirtd never ends is given up
    const timer = setTimeout(() => stream.abort(new VirtError('OPERATION_TIMEOUT', `libvirt ${name}: stream not ended in ${this.options.callTimeoutMs} ms`)), this.options.callTimeoutMs);
    try {
      await ended;
    } finally {
      clearTimeout(timer);
    }
    return { reply, data: Buffer.concat(chunks) };
  }

  /** Every event message (type MESSAGE of the remote program): its procedure number and XDR body. */
  onEvent(listener: (procedure: number, body: Buffer) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  private callWithSerial<P extends ProcedureName>(name: P, args: ProcedureArgs<P>, serial: number, timeoutMs = this.options.callTimeoutMs): Promise<ProcedureReply<P>> {
    const procedure = Procedures[name];
    if (this.closedError) return Promise.reject(this.closedError);
    if (this.pending.size >= this.options.maxPending) {
      return Promise.reject(new VirtError('RATE_LIMITED', `libvirt ${name}: ${this.pending.size} calls already in flight`));
    }
    const body = encodeXdr(procedure.args as Codec<ProcedureArgs<P>>, args);
    const packet = encodePacket(
      { program: procedure.program, version: REMOTE_PROTOCOL_VERSION, procedure: procedure.number, type: MessageType.CALL, serial, status: MessageStatus.OK },
      body,
    );
    if (packet.length > MESSAGE_MAX) return Promise.reject(new VirtError('PAYLOAD_TOO_LARGE', `libvirt ${name}: ${packet.length} bytes exceed ${MESSAGE_MAX}`));
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(serial);
        reject(new VirtError('OPERATION_TIMEOUT', `libvirt ${name}: no reply in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(serial, { procedure: name, resolve, reject, timer });
      this.socket.write(packet);
    }).then((reply) => {
      try {
        return decodeXdr(procedure.reply as Codec<ProcedureReply<P>>, reply);
      } catch (error) {
        throw new VirtError('INTERNAL', `libvirt ${name}: reply does not match its layout`, { cause: error });
      }
    });
  }

  /** Sends a keepalive PING and waits for libvirtd's PONG. */
  ping(): Promise<void> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new VirtError('OPERATION_TIMEOUT', `libvirt keepalive: no PONG in ${this.options.callTimeoutMs} ms`)), this.options.callTimeoutMs);
      this.pongWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
      this.sendKeepalive(KeepaliveProcedure.PING);
    });
  }

  /** Called once when the connection is gone (closed, failed or keepalive timed out). */
  onClosed(listener: (error: Error) => void): () => void {
    this.closedListeners.add(listener);
    return () => this.closedListeners.delete(listener);
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  /** connectClose, then the socket. */
  async close(): Promise<void> {
    if (this.closedError) return;
    try {
      await this.call('connectClose', undefined);
    } finally {
      this.fail(new VirtError('OPERATION_FAILED', 'libvirt connection closed'));
      this.socket.end();
    }
  }

  private startKeepalive(): void {
    this.keepaliveTimer = setInterval(() => {
      const silent = Date.now() - this.lastHeard;
      if (silent >= this.options.keepaliveIntervalMs * this.options.keepaliveCount) {
        this.fail(new VirtError('OPERATION_TIMEOUT', `libvirtd silent for ${silent} ms (keepalive)`));
        this.socket.destroy();
      } else if (silent >= this.options.keepaliveIntervalMs) {
        this.sendKeepalive(KeepaliveProcedure.PING);
      }
    }, this.options.keepaliveIntervalMs);
    this.keepaliveTimer.unref();
  }

  private sendKeepalive(procedure: number): void {
    this.socket.write(
      encodePacket(
        { program: KEEPALIVE_PROGRAM, version: KEEPALIVE_PROTOCOL_VERSION, procedure, type: MessageType.MESSAGE, serial: 0, status: MessageStatus.OK },
        Buffer.alloc(0),
      ),
    );
  }

  private onData(chunk: Buffer): void {
    this.lastHeard = Date.now();
    this.received.push(chunk);
    this.receivedBytes += chunk.length;
    while (this.receivedBytes >= 4) {
      const buffer = this.received.length === 1 ? this.received[0]! : Buffer.concat(this.received);
      const length = buffer.readUInt32BE(0);
      if (length < HEADER_BYTES || length > MESSAGE_MAX) {
        this.fail(new VirtError('INTERNAL', `libvirtd sent a packet of ${length} bytes (bad framing)`));
        this.socket.destroy();
        return;
      }
      if (buffer.length < length) {
        this.received = [buffer];
        return;
      }
      const rest = buffer.subarray(length);
      this.received = rest.length ? [rest] : [];
      this.receivedBytes = rest.length;
      this.onPacket(decodeHeader(buffer), buffer.subarray(HEADER_BYTES, length));
    }
  }

  private onPacket(header: PacketHeader, body: Buffer): void {
    if (header.program === KEEPALIVE_PROGRAM) {
      if (header.procedure === KeepaliveProcedure.PING) this.sendKeepalive(KeepaliveProcedure.PONG);
      else if (header.procedure === KeepaliveProcedure.PONG) for (const waiter of this.pongWaiters.splice(0)) waiter();
      return;
    }
    // replies of the qemu program share the serials of the remote program's calls
    if (header.program === QEMU_PROGRAM && header.type !== MessageType.REPLY) return;
    if (header.program !== REMOTE_PROGRAM && header.program !== QEMU_PROGRAM) return;
    if (header.type === MessageType.MESSAGE) {
      for (const listener of this.eventListeners) listener(header.procedure, Buffer.from(body));
      return;
    }
    if (header.type === MessageType.STREAM) {
      this.streams.get(header.serial)?.receive(header.status, Buffer.from(body));
      return;
    }
    if (header.type !== MessageType.REPLY) return;
    const pending = this.pending.get(header.serial);
    if (!pending) return;
    this.pending.delete(header.serial);
    clearTimeout(pending.timer);
    if (header.status === MessageStatus.OK) {
      pending.resolve(Buffer.from(body));
      return;
    }
    try {
      pending.reject(virtErrorFromRemote(decodeXdr(RemoteError, body), pending.procedure));
    } catch (error) {
      pending.reject(new VirtError('INTERNAL', `libvirt ${pending.procedure}: undecodable error reply`, { cause: error }));
    }
  }

  private fail(error: Error): void {
    if (this.closedError) return;
    this.closedError = error;
    clearInterval(this.keepaliveTimer);
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    this.pending.clear();
    for (const stream of this.streams.values()) stream.receive(MessageStatus.ERROR, undefined, error);
    this.streams.clear();
    for (const listener of this.closedListeners) listener(error);
  }
}

/** Largest data packet body sent on a stream (libvirt's VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX is 256 KiB). */
const STREAM_CHUNK = 256 * 1024;

/** One libvirt stream (virStream) on a connection: data both ways as STREAM packets of the opening call's serial. */
export class LibvirtStream {
  private readonly dataListeners = new Set<(chunk: Buffer) => void>();
  private readonly endListeners = new Set<(error?: Error) => void>();
  private ended = false;

  constructor(
    readonly serial: number,
    private readonly procedure: number,
    private readonly send: (packet: Buffer) => void,
    private readonly forget: () => void,
  ) {}

  onData(listener: (chunk: Buffer) => void): void {
    this.dataListeners.add(listener);
  }

  /** Once: libvirtd finished the stream (no error), failed it, or the connection went away. */
  onEnd(listener: (error?: Error) => void): void {
    this.endListeners.add(listener);
  }

  get closed(): boolean {
    return this.ended;
  }

  write(data: Buffer): void {
    if (this.ended) return;
    for (let at = 0; at < data.length; at += STREAM_CHUNK) this.packet(MessageStatus.CONTINUE, data.subarray(at, at + STREAM_CHUNK));
  }

  /** Ends our side (status OK, empty body): libvirtd closes the stream. */
  finish(): void {
    if (this.ended) return;
    this.packet(MessageStatus.OK, Buffer.alloc(0));
    this.end();
  }

  /** Our side gives up (status ERROR, as virStreamAbort): libvirtd drops the stream; listeners see `error`. */
  abort(error: Error): void {
    if (this.ended) return;
    this.packet(MessageStatus.ERROR, Buffer.alloc(0));
    this.end(error);
  }

  /** @internal packets of this serial from the connection */
  receive(status: number, body: Buffer | undefined, failure?: Error): void {
    if (this.ended) return;
    if (status === MessageStatus.CONTINUE && body?.length) {
      for (const listener of this.dataListeners) listener(body);
      return;
    }
    let error = failure;
    // an empty CONTINUE is libvirtd's end of data: our finish lets it free the stream (virStreamFinish)
    if (!error && status === MessageStatus.CONTINUE) this.packet(MessageStatus.OK, Buffer.alloc(0));
    if (!error && status === MessageStatus.ERROR && body) {
      try {
        error = virtErrorFromRemote(decodeXdr(RemoteError, body), 'stream');
      } catch (cause) {
        error = new VirtError('INTERNAL', 'libvirt stream: undecodable error', { cause });
      }
    }
    this.end(error);
  }

  private packet(status: number, body: Buffer): void {
    this.send(encodePacket({ program: REMOTE_PROGRAM, version: REMOTE_PROTOCOL_VERSION, procedure: this.procedure, type: MessageType.STREAM, serial: this.serial, status }, body));
  }

  private end(error?: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.forget();
    for (const listener of this.endListeners) listener(error);
  }
}

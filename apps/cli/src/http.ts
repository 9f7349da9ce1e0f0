import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { IDEMPOTENCY_HEADER, isErrorCode, operationPath, VirtError, type HttpBinding, type OperationName, type OperationResponse } from '@virtbus/api-contract';
import { HttpBindings } from './operation-bindings.js';

/** A write is sent again with the same Idempotency-Key after a timeout, an unreachable agent or a lost connection. */
const WRITE_RETRIES = 2;
const RETRY_STATUSES = new Set([502, 503, 504]);

export interface Connection {
  url: string;
  token?: string;
  caFile?: string;
  /** Client certificate and key (HTTPS): the gateway takes the role from the certificate. */
  certFile?: string;
  keyFile?: string;
}

/** No answer at all from the gateway (refused, unresolvable, TLS failure): the CLI exits 3. */
export class GatewayUnreachableError extends VirtError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('AGENT_UNREACHABLE', message, options);
  }
}

/** The URL of a table operation: its binding's path with `params` filled in, plus an optional query string. */
export function operationUrl(name: OperationName, params: Readonly<Record<string, string>>, query?: URLSearchParams): string {
  const path = operationPath(binding(name), params);
  return query && query.size > 0 ? `${path}?${query.toString()}` : path;
}

function binding(name: OperationName): HttpBinding {
  const http = HttpBindings[name];
  if (!http) throw new Error(`${name} has no HTTP binding`);
  return http;
}

/** How requests go out: node:http, or node:https with the TLS files (loaded only for an https URL: a cold call stays short). */
interface Transport {
  request: typeof httpRequest;
  agent: HttpAgent;
}

/** Talks to a virtbus gateway; errors come back as VirtErrors with the gateway's code. */
export class GatewayHttp {
  private readonly base: URL;
  private transport: Promise<Transport> | undefined;

  constructor(private readonly connection: Connection) {
    this.base = new URL(connection.url);
  }

  // one kept-alive connection for the calls of a command (its idle socket does not hold the process)
  private connect(): Promise<Transport> {
    this.transport ??=
      this.base.protocol === 'https:'
        ? import('node:https').then((https) => ({ request: https.request, agent: new https.Agent({ keepAlive: true, ...this.tlsFiles() }) }))
        : Promise.resolve({ request: httpRequest, agent: new HttpAgent({ keepAlive: true }) });
    return this.transport;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.connection.token ? { authorization: `Bearer ${this.connection.token}` } : {}), ...extra };
  }

  url(path: string): URL {
    return new URL(path, this.base);
  }

  private tlsFiles(): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
    const { caFile, certFile, keyFile } = this.connection;
    if ((certFile === undefined) !== (keyFile === undefined)) throw new VirtError('INVALID_ARG', 'a client certificate needs both --cert and --key');
    return {
      ...(caFile ? { ca: readFileSync(caFile) } : {}),
      ...(certFile ? { cert: readFileSync(certFile) } : {}),
      ...(keyFile ? { key: readFileSync(keyFile) } : {}),
    };
  }

  get wsOptions(): { headers: Record<string, string>; ca?: Buffer; cert?: Buffer; key?: Buffer } {
    return { headers: this.headers(), ...this.tlsFiles() };
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    if (method === 'GET' || method === 'HEAD') return this.once<T>(method, path, body);
    // the agent answers a repeated key with the first answer, so a retry never runs the write twice
    const { randomUUID } = await import('node:crypto');
    const key = { [IDEMPOTENCY_HEADER.toLowerCase()]: randomUUID() };
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once<T>(method, path, body, key);
      } catch (error) {
        // a lost connection is AGENT_UNREACHABLE (503) too
        if (attempt >= WRITE_RETRIES || !(VirtError.is(error) && RETRY_STATUSES.has(error.status))) throw error;
        await sleep(250 * 2 ** attempt);
      }
    }
  }

  /** Calls a table operation: method and URL come from its HTTP binding. */
  async call<N extends OperationName>(name: N, params: Readonly<Record<string, string>>, body?: unknown, query?: URLSearchParams): Promise<OperationResponse<N>> {
    return this.json<OperationResponse<N>>(binding(name).method, operationUrl(name, params, query), body);
  }

  private async once<T>(method: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<T> {
    const response = await this.send(method, path, body, headers);
    const text = await readAll(response);
    const parsed: unknown = text ? JSON.parse(text) : undefined;
    if ((response.statusCode ?? 500) >= 400) throw toError(response.statusCode ?? 500, parsed);
    return parsed as T;
  }

  /** Opens a streaming GET (Server-Sent Events). */
  async stream(path: string, headers: Record<string, string> = {}): Promise<IncomingMessage> {
    const response = await this.send('GET', path, undefined, headers);
    if ((response.statusCode ?? 500) >= 400) throw toError(response.statusCode ?? 500, JSON.parse((await readAll(response)) || 'null'));
    return response;
  }

  /** PUTs a byte stream of known length (volume uploads); resolves with the JSON reply. */
  async upload<T>(path: string, body: Readable, sizeBytes: number): Promise<T> {
    const target = this.url(path);
    const headers = this.headers({ 'content-type': 'application/octet-stream', 'content-length': String(sizeBytes) });
    const { request: send, agent } = await this.connect();
    let request: ClientRequest | undefined;
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      request = send(target, { method: 'PUT', headers, agent }, resolve);
      request.on('error', (error) => reject(new GatewayUnreachableError(`upload to ${this.base.origin} failed: ${error.message}`, { cause: error })));
      body.on('error', (error) => request!.destroy(error));
      body.pipe(request);
    });
    const text = await readAll(response);
    // answered before the whole body went out (refused): the rest is not read, so stop sending and drop the half-sent socket
    if (!request!.writableFinished) {
      body.unpipe(request);
      body.destroy();
      request!.destroy();
    }
    const parsed: unknown = text ? JSON.parse(text) : undefined;
    if ((response.statusCode ?? 500) >= 400) throw toError(response.statusCode ?? 500, parsed);
    return parsed as T;
  }

  private async send(method: string, path: string, body?: unknown, extraHeaders: Record<string, string> = {}): Promise<IncomingMessage> {
    const target = this.url(path);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers = this.headers({ ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}), ...extraHeaders });
    const { request: send, agent } = await this.connect();
    return new Promise((resolve, reject) => {
      const request = send(target, { method, headers, agent }, resolve);
      request.on('error', (error) =>
        reject(new GatewayUnreachableError(`cannot reach the gateway at ${this.base.origin}: ${error.message}`, { cause: error })),
      );
      request.end(payload);
    });
  }
}

async function readAll(response: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function toError(status: number, body: unknown): VirtError {
  const { code, message } = (body ?? {}) as { code?: unknown; message?: unknown };
  if (isErrorCode(code)) return new VirtError(code, String(message ?? code));
  return new VirtError('INTERNAL', `gateway answered HTTP ${status}`);
}

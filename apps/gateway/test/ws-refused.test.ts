import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createToken } from '@virtbus/security';
import { type NatsServerHandle, startNatsServer } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startGateway, type RunningGateway } from '../src/index.js';

const admin = createToken({ name: 'admin', role: 'admin' });
const reader = createToken({ name: 'reader', role: 'read-only' });
let nats: NatsServerHandle;
let nc: NatsConnection;

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
});

afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

/** Status of an upgrade the gateway refused. */
function refusedWith(gateway: RunningGateway, path: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${gateway.url.replace(/^http/, 'ws')}${path}`, { headers });
    socket.once('open', () => reject(new Error('the upgrade was accepted')));
    socket.once('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0);
      response.resume();
      socket.terminate();
    });
    socket.once('error', reject);
  });
}

describe('refused WebSocket upgrades', () => {
  // the socket of a refused upgrade left the HTTP server's tracking: a half-open one kept close() waiting forever
  it.each([
    ['401 (no credentials)', {}, 401],
    ['403 (role too low)', { authorization: `Bearer ${reader.token}` }, 403],
  ])('let the gateway close after a %s', async (_name, headers, status) => {
    const gateway = await startGateway({ nc, host: '127.0.0.1', port: 0, security: { tokens: [admin.record, reader.record] } });
    expect(await refusedWith(gateway, '/v1/nodes/n1/domains/web/console', headers)).toBe(status);
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      gateway.close().then(() => 'closed'),
      new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still open after 10 s'), 10_000))),
    ]);
    clearTimeout(timer);
    expect(outcome).toBe('closed');
  }, 30_000);
});

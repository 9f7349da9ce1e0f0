import { execFile } from 'node:child_process';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { sseMessages, Subjects, vncAuthResponse, type Domain, type GraphicsEvent, type SseMessage } from '@virtbus/api-contract';
import { type AgentProcess, builtBundle, decodePng, hasBinaryOrSkip, litPixels, spawnAgent, tearDown, openTestSocket, useNatsBus, waitFor } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../src/index.js';

const QEMU = hasBinaryOrSkip('qemu-system-x86_64');
const NODE = 'gnode';

let gateway: RunningGateway;
let workDir: string;
let agent: AgentProcess | undefined;
const graphicsEvents: GraphicsEvent[] = [];

async function api(method: string, path: string, body?: unknown) {
  const response = await fetch(`${gateway.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return response;
}

async function json(method: string, path: string, body?: unknown) {
  const response = await api(method, path, body);
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

/** A VNC WebSocket through the gateway that collects what the server sends. */
async function openVnc(id: string, query = '') {
  const vnc = await openTestSocket(`${gateway.url.replace(/^http/, 'ws')}/v1/nodes/${NODE}/domains/${id}/vnc${query}`, ['binary']);
  return {
    ...vnc,
    /** Takes `count` bytes once they are there. */
    take: async (count: number): Promise<Buffer> => {
      await waitFor(`${count} bytes from the VNC server (have ${vnc.received().length}, closed: ${vnc.closedWith()})`, () => vnc.received().length >= count || vnc.closedWith() !== undefined, 20_000);
      expect(vnc.closedWith()).toBeUndefined();
      const bytes = vnc.received().subarray(0, count);
      vnc.consume(count);
      return bytes;
    },
  };
}

/** The client half of RFB 3.8 up to SecurityResult with VNC authentication (type 2): 0 when the server let the viewer in. */
async function vncLogin(id: string, password: string): Promise<{ viewer: Awaited<ReturnType<typeof openVnc>>; result: number }> {
  const viewer = await openVnc(id);
  expect((await viewer.take(12)).toString('latin1')).toBe('RFB 003.008\n');
  viewer.socket.send(Buffer.from('RFB 003.008\n', 'latin1'));
  const types = [...(await viewer.take((await viewer.take(1))[0]!))];
  expect(types, 'the server asks for VNC authentication only').toEqual([2]);
  viewer.socket.send(Buffer.from([2]));
  viewer.socket.send(vncAuthResponse(password, await viewer.take(16)));
  // a refusal comes with the server closing: read the result without take's open-socket check
  await waitFor('the SecurityResult', () => viewer.received().length >= 4 || viewer.closedWith() !== undefined, 20_000);
  const result = viewer.received().readUInt32BE(0);
  viewer.consume(4);
  return { viewer, result };
}

describe.skipIf(!QEMU)('graphical console: QEMU VNC on a unix socket, relayed over the bus to a WebSocket', () => {
  const bus = useNatsBus();
  let screen: Domain;

  beforeAll(async () => {
    // Short path: the QMP, console and VNC sockets live below it (unix socket paths are limited to 107 bytes).
    workDir = await mkdtemp('/tmp/vbg-');
    bus.nc.subscribe(Subjects.eventKindFilter({ kind: 'graphics' }), { callback: (_error, message) => void graphicsEvents.push(message.json<GraphicsEvent>()) });
    agent = await spawnAgent({ node: NODE, natsUrl: bus.server.url, stateDir: join(workDir, 'agent'), drivers: 'test,qemu', extraArgs: ['--metrics-address', '127.0.0.1:0'] });
    gateway = await startGateway({ nc: bus.nc, host: '127.0.0.1', port: 0, heartbeatMs: 500, discoveryWaitMs: 500 });
  }, 300_000);

  afterAll(async () => {
    if (gateway && agent && screen) await json('PUT', `/v1/nodes/${NODE}/domains/${screen.uuid}/state`, { action: 'destroy' }).catch(() => undefined);
    await tearDown(gateway, agent, workDir);
  }, 120_000);

  it('defines and starts a domain with a VNC screen (SeaBIOS only: it prints on the VGA text screen)', async () => {
    const defined = await json('POST', `/v1/nodes/${NODE}/domains`, { name: 'screen', driver: 'qemu', memory: 64, graphics: { type: 'vnc' } });
    expect(defined.status, JSON.stringify(defined.body)).toBe(201);
    screen = defined.body as unknown as Domain;
    expect(screen.config.graphics).toEqual({ type: 'vnc', video: 'std' });
    const started = await json('PUT', `/v1/nodes/${NODE}/domains/screen/state`, { action: 'start' });
    expect(started.status, JSON.stringify(started.body)).toBe(200);
  }, 60_000);

  it('relays the RFB handshake both ways through the gateway WebSocket (binary subprotocol)', async () => {
    const viewer = await openVnc('screen');
    expect(viewer.socket.protocol).toBe('binary');
    expect((await viewer.take(12)).toString('latin1')).toBe('RFB 003.008\n');
    viewer.socket.send(Buffer.from('RFB 003.008\n', 'latin1'));
    const count = (await viewer.take(1))[0]!;
    const types = [...(await viewer.take(count))];
    expect(types).toContain(1);
    viewer.socket.send(Buffer.from([1])); // security type None
    expect((await viewer.take(4)).readUInt32BE(0), 'SecurityResult OK').toBe(0);
    viewer.socket.send(Buffer.from([1])); // ClientInit: shared
    const init = await viewer.take(24);
    const [width, height] = [init.readUInt16BE(0), init.readUInt16BE(2)];
    expect(width).toBeGreaterThan(0);
    expect(height).toBeGreaterThan(0);
    const nameLength = init.readUInt32BE(20);
    expect((await viewer.take(nameLength)).toString('utf8')).toContain('screen');
    // a full framebuffer update request: the server answers with a FramebufferUpdate (message type 0)
    const request = Buffer.alloc(10);
    request.writeUInt8(3, 0);
    request.writeUInt8(0, 1);
    request.writeUInt16BE(width, 6);
    request.writeUInt16BE(height, 8);
    viewer.socket.send(request);
    expect((await viewer.take(1))[0], 'FramebufferUpdate').toBe(0);

    await waitFor('the CONNECTED graphics event', () => graphicsEvents.some((event) => event.uuid === screen.uuid && event.type === 'CONNECTED'));
    const session = graphicsEvents.find((event) => event.type === 'CONNECTED')!.session;
    await viewer.close();
    await waitFor('the DISCONNECTED graphics event', () => graphicsEvents.some((event) => event.session === session && event.type === 'DISCONNECTED'));

    // and over SSE, from the events stream
    const abort = new AbortController();
    const stream = await fetch(`${gateway.url}/v1/events?kind=graphics&since=0`, { signal: abort.signal });
    const seen: SseMessage[] = [];
    for await (const message of sseMessages(stream.body!)) {
      if (message.event) seen.push(message);
      if (seen.length === 2) break;
    }
    abort.abort();
    expect(seen.map((message) => message.event)).toEqual(['graphics', 'graphics']);
    expect(seen.map((message) => (JSON.parse(message.data!) as GraphicsEvent).type)).toEqual(['CONNECTED', 'DISCONNECTED']);
  }, 60_000);

  it('refuses an exclusive viewer while another watches, unless forced (which closes the other)', async () => {
    const first = await openVnc('screen');
    expect((await first.take(12)).toString('latin1')).toBe('RFB 003.008\n');
    const refused = await openVnc('screen', '?exclusive=true');
    await refused.closed;
    expect(refused.closedWith()).toMatch(/^4409 OPERATION_INVALID/);
    const forced = await openVnc('screen', '?exclusive=true&force=true');
    expect((await forced.take(12)).toString('latin1')).toBe('RFB 003.008\n');
    await first.closed;
    expect(first.closedWith()).toBe('1000 an exclusive viewer took the screen');
    await forced.close();
  }, 60_000);

  it("answers a screenshot as a PNG of the guest's screen", async () => {
    let image: ReturnType<typeof decodePng> | undefined;
    await waitFor('SeaBIOS text on the screen', async () => {
      const response = await api('GET', `/v1/nodes/${NODE}/domains/screen/screenshot`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('image/png');
      image = decodePng(Buffer.from(await response.arrayBuffer()));
      // QEMU shows a placeholder of another size until the guest sets its video mode
      return image.width === 720 && litPixels(image) > 100;
    });
    // the VGA text mode SeaBIOS leaves the screen in
    expect([image!.width, image!.height]).toEqual([720, 400]);
  }, 90_000);

  it('presses keys with send-key and refuses unknown key names', async () => {
    const sent = await json('POST', `/v1/nodes/${NODE}/domains/screen/send-key`, { keys: ['ctrl', 'alt', 'delete'] });
    expect(sent.status, JSON.stringify(sent.body)).toBe(200);
    const bad = await json('POST', `/v1/nodes/${NODE}/domains/screen/send-key`, { keys: ['no_such_key'] });
    expect(bad.status, JSON.stringify(bad.body)).toBe(400);
    expect(bad.body!.code).toBe('INVALID_ARG');
  }, 30_000);

  it('saves a screenshot and presses keys from the CLI', async () => {
    const file = join(workDir, 'cli-shot.png');
    const run = (...args: string[]) => promisify(execFile)(process.execPath, [builtBundle('virtbus'), '--url', gateway.url, '--node', NODE, ...args]);
    expect((await run('screenshot', 'screen', file)).stdout).toContain(file);
    expect(decodePng(await readFile(file)).width).toBeGreaterThan(0);
    expect((await run('send-key', 'screen', 'shift', 'a', '--holdtime', '50')).stdout).toContain('shift a');
  }, 30_000);

  it('refuses a domain defined without a screen (OPERATION_INVALID) and a driver without screens (OPERATION_UNSUPPORTED)', async () => {
    expect((await json('POST', `/v1/nodes/${NODE}/domains`, { name: 'plain', driver: 'qemu', memory: 64 })).status).toBe(201);
    expect((await json('PUT', `/v1/nodes/${NODE}/domains/plain/state`, { action: 'start' })).status).toBe(200);
    const shot = await json('GET', `/v1/nodes/${NODE}/domains/plain/screenshot`);
    expect([shot.status, shot.body!.code]).toEqual([409, 'OPERATION_INVALID']);
    const viewer = await openVnc('plain');
    await viewer.closed;
    expect(viewer.closedWith()).toMatch(/^4409 OPERATION_INVALID/);
    expect((await json('PUT', `/v1/nodes/${NODE}/domains/plain/state`, { action: 'destroy' })).status).toBe(200);

    expect((await json('POST', `/v1/nodes/${NODE}/domains`, { name: 'mem', driver: 'test' })).status).toBe(201);
    expect((await json('PUT', `/v1/nodes/${NODE}/domains/mem/state`, { action: 'start' })).status).toBe(200);
    const key = await json('POST', `/v1/nodes/${NODE}/domains/mem/send-key`, { keys: ['a'] });
    expect([key.status, key.body!.code]).toEqual([409, 'OPERATION_INVALID']);
  }, 60_000);

  it("gives the test driver's domains a screen too: RFB through the WebSocket, a PNG, keys", async () => {
    expect((await json('POST', `/v1/nodes/${NODE}/domains`, { name: 'memscreen', driver: 'test', graphics: { type: 'vnc' } })).status).toBe(201);
    expect((await json('PUT', `/v1/nodes/${NODE}/domains/memscreen/state`, { action: 'start' })).status).toBe(200);
    expect((await json('POST', `/v1/nodes/${NODE}/domains/memscreen/send-key`, { keys: ['ctrl', 'alt', 'delete'] })).status).toBe(200);
    const shot = await fetch(`${gateway.url}/v1/nodes/${NODE}/domains/memscreen/screenshot`);
    expect(shot.headers.get('content-type')).toBe('image/png');
    expect(decodePng(Buffer.from(await shot.arrayBuffer())).width).toBe(320);
    const viewer = await openVnc('memscreen');
    expect((await viewer.take(12)).toString('latin1')).toBe('RFB 003.008\n');
    viewer.socket.send(Buffer.from('RFB 003.008\n'));
    expect([...(await viewer.take(2))]).toEqual([1, 1]);
    viewer.socket.send(Buffer.from([1]));
    expect((await viewer.take(4)).readUInt32BE(0)).toBe(0);
    viewer.socket.send(Buffer.from([1]));
    const init = await viewer.take(24 + 'memscreen'.length);
    expect([init.readUInt16BE(0), init.readUInt16BE(2)]).toEqual([320, 200]);
    expect((await json('PUT', `/v1/nodes/${NODE}/domains/memscreen/state`, { action: 'destroy' })).status).toBe(200);
    await viewer.closed;
    expect(viewer.closedWith()).toMatch(/^1000 /);
  }, 60_000);

  it('ends the viewer with the reason when the domain stops', async () => {
    const viewer = await openVnc('screen');
    expect((await viewer.take(12)).toString('latin1')).toBe('RFB 003.008\n');
    expect((await json('PUT', `/v1/nodes/${NODE}/domains/screen/state`, { action: 'destroy' })).status).toBe(200);
    await viewer.closed;
    expect(viewer.closedWith()).toBe('1000 domain screen stopped (destroyed)');
  }, 60_000);

  it('asks for a VNC password that no read shows, takes a new one live, and keeps it across an agent restart (QEMU holds it)', async () => {
    const secret = 'Pa55-vnc';
    const defined = await json('POST', `/v1/nodes/${NODE}/domains`, { name: 'locked', driver: 'qemu', memory: 64, graphics: { type: 'vnc', password: secret } });
    expect(defined.status, JSON.stringify(defined.body)).toBe(201);
    const locked = defined.body as unknown as Domain;
    expect(locked.config.graphics).toEqual({ type: 'vnc', video: 'std', passwordSet: true });
    expect((await json('PUT', `/v1/nodes/${NODE}/domains/locked/state`, { action: 'start' })).status).toBe(200);
    for (const path of [`/v1/nodes/${NODE}/domains/locked`, `/v1/nodes/${NODE}/domains`, `/v1/domains`]) {
      const read = await api('GET', path);
      expect(read.status, path).toBe(200);
      expect(await read.text(), path).not.toContain(secret);
    }
    // the agent keeps the password in the domain's file, which only its owner reads
    expect((await stat(join(workDir, 'agent', 'domains', `${locked.uuid}.json`))).mode & 0o777).toBe(0o600);

    const wrong = await vncLogin('locked', 'nope');
    expect(wrong.result, 'SecurityResult failed').toBe(1);
    await wrong.viewer.closed;
    const reason = wrong.viewer.received();
    expect(reason.subarray(4, 4 + reason.readUInt32BE(0)).toString()).toMatch(/auth/i);
    const right = await vncLogin('locked', secret);
    expect(right.result, 'SecurityResult OK').toBe(0);
    right.viewer.socket.send(Buffer.from([1]));
    const init = await right.viewer.take(24);
    expect((await right.viewer.take(init.readUInt32BE(20))).toString()).toContain('locked');
    await right.viewer.close();

    // libvirt's update-device on <graphics passwd>: the running server takes it at once
    const changed = await json('PUT', `/v1/nodes/${NODE}/domains/locked`, { graphics: { type: 'vnc', password: 'n3w' } });
    expect(changed.status, JSON.stringify(changed.body)).toBe(200);
    expect(JSON.stringify(changed.body)).not.toContain('n3w');
    const old = await vncLogin('locked', secret);
    expect(old.result).toBe(1);
    await old.viewer.close();

    await agent!.stop();
    agent = await spawnAgent({ node: NODE, natsUrl: bus.server.url, stateDir: join(workDir, 'agent'), drivers: 'test,qemu', extraArgs: ['--metrics-address', '127.0.0.1:0'] });
    await waitFor('the adopted domain running', async () => (await json('GET', `/v1/nodes/${NODE}/domains/locked`)).body?.state === 'running');
    const adopted = await vncLogin('locked', 'n3w');
    expect(adopted.result, 'the new password after the agent restart').toBe(0);
    await adopted.viewer.close();
    const refused = await vncLogin('locked', secret);
    expect(refused.result).toBe(1);
    await refused.viewer.close();
    expect((await json('PUT', `/v1/nodes/${NODE}/domains/locked/state`, { action: 'destroy' })).status).toBe(200);
  }, 120_000);
});

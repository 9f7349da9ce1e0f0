import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createToken } from '@virtbus/security';
import { addTestNetns, type AgentProcess, DIST_DIR, ensureTestGuest, GUEST_FLAGS, GUEST_MARKERS, GUEST_VGA_MARKER, hasBinaryOrSkip, type NatsServerHandle, removeTestNetns, REPO_ROOT, spawnAgent, startNatsServer, tearDown } from '@virtbus/testing';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startGateway, type RunningGateway } from '../src/index.js';

const CHROMIUM = '/usr/bin/chromium';
const QEMU = hasBinaryOrSkip('qemu-system-x86_64');
const NODE = 'webnode';
/** A second node: the destination of an offline (test driver) and a live (QEMU) migration. */
const NODE2 = 'webnode2';
/** The first node's networks and the QEMU guests on them live in this namespace. */
const NETNS = `vbwebui${process.pid}`;
/** Screenshots of each page, for people to look at. */
const OUTPUT_DIR = join(REPO_ROOT, 'test-results', 'web-ui');
const admin = createToken({ name: 'ui-admin', role: 'admin' });
const reader = createToken({ name: 'ui-reader', role: 'read-only' });

let nats: NatsServerHandle;
let gateway: RunningGateway;
let nc: NatsConnection;
let workDir: string;
let agent: AgentProcess | undefined;
let agent2: AgentProcess | undefined;
let browser: Browser;
let page: Page;

async function api(method: string, path: string, body?: unknown) {
  const response = await fetch(`${gateway.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${admin.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

const stateOf = (name: string) => page.getByTestId(`domain-${name}`).getByTestId('state');
const domainCounts = (node: string) => page.getByTestId(`node-${node}`).locator('td').nth(3);
/** A page saved as `file` after checking it fits the 1280-pixel-wide window (no horizontal scrolling). */
async function shoot(file: string): Promise<void> {
  expect(await page.evaluate('document.documentElement.scrollWidth'), `${file}: page wider than the window`).toBeLessThanOrEqual(1280);
  await page.screenshot({ path: join(OUTPUT_DIR, file) });
}

describe.skipIf(!existsSync(CHROMIUM) || !QEMU)('web UI in a real browser (Debian chromium) against nats-server, an agent and the gateway', () => {
  beforeAll(async () => {
    await mkdir(OUTPUT_DIR, { recursive: true });
    nats = await startNatsServer();
    workDir = await mkdtemp('/tmp/vbw-');
    nc = await connect({ servers: nats.url });
    addTestNetns(NETNS);
    [agent, agent2] = await Promise.all([
      spawnAgent({ node: NODE, natsUrl: nats.url, stateDir: join(workDir, 'agent'), drivers: 'test,qemu', extraArgs: ['--metrics-address', '127.0.0.1:0', '--netns', NETNS] }),
      spawnAgent({ node: NODE2, natsUrl: nats.url, stateDir: join(workDir, 'agent2'), drivers: 'test,qemu', extraArgs: ['--metrics-address', '127.0.0.1:0'] }),
    ]);
    gateway = await startGateway({ nc, host: '127.0.0.1', port: 0, heartbeatMs: 500, discoveryWaitMs: 500, uiDir: join(DIST_DIR, 'web'), security: { tokens: [admin.record, reader.record] } });
    expect((await api('POST', `/v1/nodes/${NODE}/domains`, { name: 'mem', driver: 'test' })).status).toBe(201);
    expect((await api('POST', `/v1/nodes/${NODE}/domains`, { name: 'screen', driver: 'qemu', memory: 64, graphics: { type: 'vnc' } })).status).toBe(201);
    // the test guest's NIC is on a network, so a NIC can be hotplugged next to it (QEMU then runs in NETNS)
    expect((await api('POST', `/v1/nodes/${NODE}/networks`, { name: 'lan', mode: 'isolated', ipv4: { address: '10.78.0.1/24', dhcp: { ranges: [{ start: '10.78.0.100', end: '10.78.0.150' }] } } })).status).toBe(201);
    expect((await api('PUT', `/v1/nodes/${NODE}/networks/lan/state`, { action: 'start' })).status).toBe(200);
    const guest = await ensureTestGuest();
    const linux = { name: 'linux', driver: 'qemu', vcpus: 1, memory: 256, graphics: { type: 'vnc' }, nics: [{ type: 'network', source: 'lan' }], os: { kernel: guest.kernel, initrd: guest.initrd, cmdline: `${guest.cmdline} ${GUEST_FLAGS.dhcp}` } };
    expect((await api('POST', `/v1/nodes/${NODE}/domains`, linux)).status).toBe(201);
    // root in a container: chromium's sandbox needs user namespaces it may not get
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    // a missing element fails its step with a name instead of the whole test's timeout
    page.setDefaultTimeout(20_000);
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    if (gateway) {
      for (const name of ['linux', 'screen', 'mem', 'hop']) await api('PUT', `/v1/nodes/${NODE}/domains/${name}/state`, { action: 'destroy' }).catch(() => undefined);
      await api('PUT', `/v1/nodes/${NODE2}/domains/hop/state`, { action: 'destroy' }).catch(() => undefined);
    }
    await tearDown(gateway, [agent, agent2], nc, nats, workDir);
    removeTestNetns(NETNS);
  }, 120_000);

  it('serves the built UI without a token and without a dev server', async () => {
    const response = await fetch(`${gateway.url}/ui/`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/html');
    expect(await response.text()).toContain('/ui/assets/');
    expect((await fetch(`${gateway.url}/ui/assets/missing.js`)).status).toBe(404);
    expect((await fetch(`${gateway.url}/ui/../package.json`)).status).not.toBe(200);
  });

  it('refuses a wrong token and signs in with a good one', async () => {
    await page.goto(`${gateway.url}/ui/`);
    await page.getByLabel('Token').fill('vbt_nope_nope');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('UNAUTHORIZED');
    await page.screenshot({ path: join(OUTPUT_DIR, 'sign-in.png') });
    // by keyboard only: Tab reaches the token field, Enter signs in
    await page.goto(`${gateway.url}/ui/`);
    for (let tabs = 0; tabs < 10 && (await page.evaluate('document.activeElement?.getAttribute("type")')) !== 'password'; tabs++) await page.keyboard.press('Tab');
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.type(admin.token);
    await page.keyboard.press('Enter');
    await page.getByTestId(`node-${NODE}`).waitFor();
    await expect.poll(() => stateOf('mem').textContent()).toBe('shutoff');
    // the node's domain counts (running / total): linux, mem and screen, none running
    await expect.poll(() => domainCounts(NODE).textContent(), { timeout: 15_000 }).toBe('0 / 3');
    await shoot('fleet.png');
  }, 60_000);

  it('starts and stops a domain from its buttons, the state arriving live over SSE', async () => {
    await page.getByRole('button', { name: 'Start mem' }).click();
    await expect.poll(() => stateOf('mem').textContent(), { timeout: 20_000 }).toBe('running');
    await page.getByRole('button', { name: 'Stop mem' }).click();
    await expect.poll(() => stateOf('mem').textContent(), { timeout: 20_000 }).toBe('shutoff');
    // a change made elsewhere shows up too
    expect((await api('PUT', `/v1/nodes/${NODE}/domains/mem/state`, { action: 'start' })).status).toBe(200);
    await expect.poll(() => stateOf('mem').textContent(), { timeout: 20_000 }).toBe('running');
    // the counts follow within the agent's registry write after the event, not its next heartbeat
    await expect.poll(() => domainCounts(NODE).textContent(), { timeout: 10_000 }).toBe('1 / 3');
  }, 60_000);

  it('shows a change made while the fleet page loads, between its domain list and its event stream', async () => {
    await page.getByRole('link', { name: 'Storage' }).click();
    await page.getByTestId('pool-default').waitFor();
    // the list is read, then mem stops, then the list arrives; an event stream asked for beside that list opens only now
    let listed = false;
    let changed!: () => void;
    const stopped = new Promise<void>((resolve) => (changed = resolve));
    const domainList = (url: URL) => url.pathname === '/v1/domains';
    const eventStream = (url: URL) => url.pathname === '/v1/events';
    await page.route(domainList, async (route) => {
      if (listed) return route.continue();
      listed = true;
      const response = await route.fetch();
      expect((await api('PUT', `/v1/nodes/${NODE}/domains/mem/state`, { action: 'destroy' })).status).toBe(200);
      changed();
      await route.fulfill({ response });
    });
    await page.route(eventStream, async (route) => {
      if (listed) await stopped;
      await route.continue();
    });
    await page.getByRole('link', { name: 'Fleet' }).click();
    await expect.poll(() => stateOf('mem').textContent(), { timeout: 20_000 }).toBe('shutoff');
    await page.unroute(domainList);
    await page.unroute(eventStream);
    expect((await api('PUT', `/v1/nodes/${NODE}/domains/mem/state`, { action: 'start' })).status).toBe(200);
    await expect.poll(() => stateOf('mem').textContent(), { timeout: 20_000 }).toBe('running');
  }, 60_000);

  it('creates a test-driver domain in the form: an API validation error shows on its field, the new row arrives live over SSE', async () => {
    await page.getByRole('button', { name: 'Create domain' }).click();
    await page.getByLabel('Driver').selectOption('test');
    await page.getByLabel('Name').fill('bad name!');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    const nameError = page.locator('#error-name');
    await expect.poll(() => nameError.textContent()).toContain('INVALID_ARG: /name');
    expect(await page.getByLabel('Name').getAttribute('aria-invalid')).toBe('true');
    await page.screenshot({ path: join(OUTPUT_DIR, 'create-domain.png') });
    await page.getByLabel('Name').fill('made-in-form');
    await page.getByLabel('Memory (MiB)').fill('64');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await expect.poll(() => stateOf('made-in-form').textContent(), { timeout: 20_000 }).toBe('shutoff');
    const defined = (await api('GET', `/v1/nodes/${NODE}/domains/made-in-form`)).body as { driver: string; config: { memory: number } };
    expect([defined.driver, defined.config.memory]).toEqual(['test', 64]);
  }, 60_000);

  it("shows a QEMU guest's screen through noVNC (the canvas is not blank)", async () => {
    await page.getByRole('button', { name: 'Start screen' }).click();
    await expect.poll(() => stateOf('screen').textContent(), { timeout: 30_000 }).toBe('running');
    await page.getByRole('link', { name: 'screen', exact: true }).click();
    await page.getByRole('tab', { name: 'Screen' }).click();
    await expect.poll(() => page.getByTestId('vnc-status').textContent(), { timeout: 30_000 }).toBe('(connected)');
    // SeaBIOS prints on the VGA text screen: many pixels differ from the first one
    // a string: this file is typed for Node, the check runs in the page
    await page.waitForFunction(
      `(() => {
        const canvas = document.querySelector('[data-testid="vnc-screen"] canvas');
        if (!canvas || canvas.width === 0) return false;
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let lit = 0;
        for (let at = 0; at < pixels.length; at += 4) if (pixels[at] !== pixels[0] || pixels[at + 1] !== pixels[1] || pixels[at + 2] !== pixels[2]) lit++;
        return lit > 100;
      })()`,
      undefined,
      { timeout: 60_000, polling: 250 },
    );
    // noVNC's canvas holds the framebuffer at its own size: compare it with the API's screenshot, pixel by pixel
    const compare = async () => (await page.evaluate(`(async () => {
      const canvas = document.querySelector('[data-testid="vnc-screen"] canvas');
      const response = await fetch('/v1/nodes/${NODE}/domains/screen/screenshot', { headers: { authorization: 'Bearer ${admin.token}' } });
      const image = await createImageBitmap(await response.blob());
      const shot = new OffscreenCanvas(image.width, image.height).getContext('2d');
      shot.drawImage(image, 0, 0);
      const a = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      const b = shot.getImageData(0, 0, image.width, image.height).data;
      let differing = 0;
      for (let at = 0; at < Math.min(a.length, b.length); at += 4) if (a[at] !== b[at] || a[at + 1] !== b[at + 1] || a[at + 2] !== b[at + 2]) differing++;
      return { canvas: [canvas.width, canvas.height], shot: [image.width, image.height], differing, png: canvas.toDataURL('image/png') };
    })()`)) as { canvas: number[]; shot: number[]; differing: number; png: string };
    // until the guest set its video mode QEMU shows a placeholder of another size; the text cursor blinks, so a few cells may differ
    const matches = (compared: Awaited<ReturnType<typeof compare>>) =>
      compared.canvas.join('x') === compared.shot.join('x') && compared.differing < (compared.shot[0]! * compared.shot[1]!) / 100;
    let last: Awaited<ReturnType<typeof compare>> | undefined;
    await expect.poll(async () => matches((last = await compare())), { timeout: 60_000, interval: 500 }).toBe(true);
    await writeFile(join(OUTPUT_DIR, 'screen-canvas.png'), Buffer.from(last!.png.split(',')[1]!, 'base64'));
    await page.screenshot({ path: join(OUTPUT_DIR, 'screen.png'), fullPage: true });
    await page.getByRole('link', { name: 'Fleet' }).click();
  }, 120_000);

  it('asks for a VNC password in a labelled field (noVNC credentialsrequired): a wrong one shows the refusal, the screen shows only after the right one', async () => {
    // a test-driver screen: its colour comes from the uuid (1b 2c 3d)
    const uuid = '1b2c3d4e-0000-4000-8000-00000000f00d';
    const password = 'open-s3s';
    const defined = await api('POST', `/v1/nodes/${NODE}/domains`, { name: 'locked', uuid, driver: 'test', graphics: { type: 'vnc', password } });
    expect(defined.status, JSON.stringify(defined.body)).toBe(201);
    expect(JSON.stringify(defined.body)).not.toContain(password);
    expect((await api('PUT', `/v1/nodes/${NODE}/domains/locked/state`, { action: 'start' })).status).toBe(200);
    const read = await api('GET', `/v1/nodes/${NODE}/domains/locked`);
    expect((read.body as { config: { graphics: unknown } }).config.graphics).toEqual({ type: 'vnc', video: 'std', passwordSet: true });
    expect(JSON.stringify(read.body)).not.toContain(password);
    // noVNC's canvas: its width and top-left pixel (a string: this file is typed for Node, the check runs in the page)
    const canvasState = () =>
      page.evaluate(`(() => {
        const canvas = document.querySelector('[data-testid="vnc-screen"] canvas');
        if (!canvas || canvas.width === 0) return 'blank';
        return canvas.width + ':' + [...canvas.getContext('2d').getImageData(0, 0, 1, 1).data.subarray(0, 3)].join(',');
      })()`);
    await page.goto(`${gateway.url}/ui/#/domains/${NODE}/${uuid}`);
    await page.getByRole('tab', { name: 'Screen' }).click();
    await expect.poll(() => page.getByTestId('vnc-status').textContent()).toBe('(password required)');
    expect(await canvasState()).toBe('blank');
    await page.screenshot({ path: join(OUTPUT_DIR, 'screen-password.png') });

    await page.getByLabel('VNC password').fill('wrong');
    await page.getByRole('button', { name: 'Connect' }).click();
    await expect.poll(() => page.getByTestId('vnc-failure').textContent()).toContain('Authentication failed');
    expect(await canvasState()).toBe('blank');
    await page.screenshot({ path: join(OUTPUT_DIR, 'screen-password-refused.png') });

    await page.getByRole('button', { name: 'Try again' }).click();
    await page.getByLabel('VNC password').fill(password);
    await page.getByRole('button', { name: 'Connect' }).click();
    await expect.poll(() => page.getByTestId('vnc-status').textContent()).toBe('(connected)');
    await expect.poll(canvasState).toBe('320:27,44,61');
    expect(await page.getByTestId('vnc-failure').count()).toBe(0);
    await page.screenshot({ path: join(OUTPUT_DIR, 'screen-password-accepted.png') });
    await page.getByRole('link', { name: 'Fleet' }).click();
    // gone again: the fleet paging below counts webnode's domains
    expect((await api('PUT', `/v1/nodes/${NODE}/domains/locked/state`, { action: 'destroy' })).status).toBe(200);
    expect((await api('DELETE', `/v1/nodes/${NODE}/domains/locked`)).status).toBe(200);
  }, 60_000);

  it("starts the QEMU test guest from the UI and runs a command on its serial console (xterm.js)", async () => {
    await page.getByRole('button', { name: 'Start linux' }).click();
    await expect.poll(() => stateOf('linux').textContent(), { timeout: 30_000 }).toBe('running');
    await page.getByRole('link', { name: 'linux', exact: true }).click();
    const terminal = page.getByTestId('serial-console');
    await expect.poll(() => page.getByTestId('serial-status').textContent(), { timeout: 30_000 }).toBe('(connected)');
    // the guest's shell prints the marker once ttyS0 is open: keys typed after it are read
    await expect.poll(() => terminal.textContent(), { timeout: 100_000, interval: 500 }).toContain(GUEST_MARKERS.ready);
    await terminal.click();
    await page.keyboard.type('echo ui-$((6*7))');
    await page.keyboard.press('Enter');
    await expect.poll(() => terminal.textContent(), { timeout: 30_000 }).toContain('ui-42');
    await shoot('domain-serial.png');
    await page.getByRole('link', { name: 'Fleet' }).click();
  }, 180_000);

  it("a domain's page: actions, live charts, snapshots as a tree, devices and its events", async () => {
    await page.getByRole('link', { name: 'mem', exact: true }).click();
    const state = page.getByTestId('domain-state');
    await expect.poll(() => state.textContent(), { timeout: 20_000 }).toBe('running');
    await page.getByRole('button', { name: 'Suspend' }).click();
    await expect.poll(() => state.textContent(), { timeout: 20_000 }).toBe('paused');
    await page.getByRole('button', { name: 'Resume' }).click();
    await expect.poll(() => state.textContent(), { timeout: 20_000 }).toBe('running');
    await page.getByRole('tab', { name: 'Charts' }).click();
    await expect.poll(async () => Number((await page.getByTestId('stats-samples').textContent())?.split(' ')[0]), { timeout: 20_000 }).toBeGreaterThanOrEqual(2);
    expect(await page.locator('.charts canvas').count()).toBe(4);
    await shoot('domain-charts.png');
    await page.getByRole('tab', { name: 'Snapshots' }).click();
    for (const name of ['base', 'next']) {
      await page.getByLabel('Snapshot name').fill(name);
      await page.getByRole('button', { name: 'Create snapshot' }).click();
      await page.getByTestId(`snapshot-${name}`).waitFor();
    }
    // the second is a child of the first in the tree
    expect(await page.getByTestId('snapshot-base').getByTestId('snapshot-next').count()).toBe(1);
    await page.getByRole('button', { name: 'Revert to base' }).click();
    await expect.poll(() => page.getByTestId('snapshot-base').locator(':scope > em').textContent()).toBe('(current)');
    await page.screenshot({ path: join(OUTPUT_DIR, 'domain-snapshots.png') });
    await page.getByRole('button', { name: 'Delete next' }).click();
    await expect.poll(() => page.getByTestId('snapshot-next').count()).toBe(0);
    await page.getByRole('tab', { name: 'Disks and NICs' }).click();
    await page.getByRole('table', { name: 'Disks' }).waitFor();
    await page.screenshot({ path: join(OUTPUT_DIR, 'domain-devices.png') });
    // keyboard: the arrow keys move between tabs
    await page.getByRole('tab', { name: 'Disks and NICs' }).press('ArrowRight');
    expect(await page.getByRole('tab', { name: 'Snapshots' }).getAttribute('aria-selected')).toBe('true');
    await page.getByRole('tab', { name: 'Events' }).click();
    await expect.poll(() => page.getByRole('table', { name: 'Events of this domain' }).textContent()).toContain('SUSPENDED');
    await page.screenshot({ path: join(OUTPUT_DIR, 'domain-events.png') });
    await page.getByRole('link', { name: 'Fleet' }).click();
  }, 90_000);

  it("shows a change made while the domain's page reads the domain, its event stream open", async () => {
    const uuid = (await api('GET', `/v1/nodes/${NODE}/domains/mem`)).body?.['uuid'] as string;
    // a live stream of mem's events beside the page's: once it has the change, the page's stream has it too
    const abort = new AbortController();
    const watch = await fetch(`${gateway.url}/v1/events?kind=domain&domain=${uuid}`, { headers: { authorization: `Bearer ${admin.token}`, accept: 'text/event-stream' }, signal: abort.signal });
    const reader = watch.body!.pipeThrough(new TextDecoderStream()).getReader();
    const seen = async (text: string): Promise<void> => {
      for (let got = ''; !got.includes(text); ) got += (await reader.read()).value ?? '';
    };
    const pageStream = page.waitForResponse((response) => new URL(response.url()).pathname === '/v1/events');
    // the page's read of mem is answered as mem was, after mem was suspended and the page's stream opened
    let held = false;
    const domainRead = (url: URL) => url.pathname === `/v1/nodes/${NODE}/domains/${uuid}`;
    await page.route(domainRead, async (route) => {
      if (held || route.request().method() !== 'GET') return route.continue();
      held = true;
      const response = await route.fetch();
      await pageStream;
      expect((await api('PUT', `/v1/nodes/${NODE}/domains/mem/state`, { action: 'suspend' })).status).toBe(200);
      await seen('SUSPENDED');
      await route.fulfill({ response });
    });
    await page.getByRole('link', { name: 'mem', exact: true }).click();
    const state = page.getByTestId('domain-state');
    await expect.poll(() => state.textContent(), { timeout: 20_000 }).toBe('paused');
    await page.unroute(domainRead);
    abort.abort();
    expect(held).toBe(true);
    expect((await api('PUT', `/v1/nodes/${NODE}/domains/mem/state`, { action: 'resume' })).status).toBe(200);
    await expect.poll(() => state.textContent(), { timeout: 20_000 }).toBe('running');
    await page.getByRole('link', { name: 'Fleet' }).click();
  }, 60_000);

  it('storage: uploads an image with a progress bar and downloads it; networks list; the events page follows the stream', async () => {
    await page.getByRole('link', { name: 'Storage' }).click();
    await page.getByTestId('pool-default').waitFor();
    const image = Buffer.alloc(3 * 2 ** 20, 7);
    image.write('virtbus-web-upload', 0);
    await page.getByLabel('Image file').setInputFiles({ name: 'upload.raw', mimeType: 'application/octet-stream', buffer: image });
    await page.getByRole('button', { name: 'Upload' }).click();
    await page.getByTestId('volume-upload.raw').waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('upload-progress').getAttribute('value')).toBe('100');
    await shoot('storage.png');
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download upload.raw' }).click()]);
    const saved = join(workDir, 'downloaded.raw');
    await download.saveAs(saved);
    expect((await readFile(saved)).equals(image)).toBe(true);

    await page.getByRole('link', { name: 'Networks' }).click();
    await page.getByRole('table', { name: 'Networks' }).waitFor();
    // the QEMU guest (started above) asked lan's dnsmasq for an address at boot
    const mac = ((await api('GET', `/v1/nodes/${NODE}/domains/linux`)).body as { config: { nics: { mac: string }[] } }).config.nics[0]!.mac;
    expect(await page.getByTestId('network-lan').locator('td').nth(3).textContent()).toBe('10.78.0.1/24');
    await page.getByRole('button', { name: 'DHCP leases of lan' }).click();
    await expect.poll(() => page.getByRole('table', { name: 'DHCP leases' }).textContent()).toMatch(new RegExp(`${mac}.*10\\.78\\.0\\.1[0-5]\\d`));
    await shoot('networks.png');

    await page.getByRole('link', { name: 'Events' }).click();
    await page.getByRole('table', { name: 'Events' }).waitFor();
    // the stream is subscribed once the gateway sent its headers: retry the change until it shows
    await expect
      .poll(
        async () => {
          await api('PUT', `/v1/nodes/${NODE}/domains/made-in-form/state`, { action: 'start' });
          await api('PUT', `/v1/nodes/${NODE}/domains/made-in-form/state`, { action: 'destroy' });
          return page.getByRole('table', { name: 'Events' }).textContent();
        },
        { timeout: 20_000, interval: 1_000 },
      )
      .toContain('name=made-in-form type=STARTED');
    await shoot('events.png');
    await page.getByRole('link', { name: 'Fleet' }).click();
  }, 90_000);

  it('migrates a domain to the other node from its page (offline, the test driver), with the progress and the page following it', async () => {
    await page.getByRole('link', { name: 'made-in-form', exact: true }).click();
    await page.getByRole('tab', { name: 'Migrate' }).click();
    await expect.poll(() => page.getByLabel('Destination node').inputValue()).toBe(NODE2);
    await page.getByLabel('Offline (the definition only)').check();
    await page.getByLabel('Remove it from this node').check();
    await page.getByRole('button', { name: 'Migrate' }).click();
    await expect.poll(() => page.locator('#domain-title small').textContent(), { timeout: 30_000 }).toBe(`on ${NODE2}`);
    await page.screenshot({ path: join(OUTPUT_DIR, 'domain-migrated.png') });
    expect((await api('GET', `/v1/nodes/${NODE}/domains/made-in-form`)).status).toBe(404);
    expect((await api('GET', `/v1/nodes/${NODE2}/domains/made-in-form`)).status).toBe(200);
    await page.getByRole('link', { name: 'Fleet' }).click();
    await expect.poll(() => page.getByTestId('domain-made-in-form').locator('td').nth(2).textContent(), { timeout: 20_000 }).toBe(NODE2);
  }, 60_000);

  it('fleet overview: node CPUs/memory/NUMA; the domains filtered, sorted by name both ways, two test domains started at once from their checkboxes', async () => {
    // hardware columns after the four summary ones: CPUs, memory, NUMA cells
    const hardware = page.getByTestId(`node-${NODE}`).locator('td');
    await expect.poll(() => hardware.nth(4).textContent()).toMatch(/^[1-9]\d*$/);
    expect(await hardware.nth(5).textContent()).toMatch(/^\d+\.\d GiB$/);
    expect(await hardware.nth(6).textContent()).toMatch(/^[1-9]\d*$/);
    for (const name of ['bulk-a', 'bulk-b']) expect((await api('POST', `/v1/nodes/${NODE2}/domains`, { name, driver: 'test' })).status).toBe(201);
    await page.getByTestId('domain-bulk-b').waitFor();
    await page.getByLabel('Filter').fill('bulk');
    const names = () => page.getByRole('table', { name: 'Domains' }).locator('tbody tr td:nth-child(2)').allTextContents();
    await expect.poll(names).toEqual(['bulk-a', 'bulk-b']);
    const byName = page.getByRole('button', { name: 'Name', exact: true });
    await byName.click();
    expect(await page.locator('th', { has: byName }).getAttribute('aria-sort')).toBe('ascending');
    expect(await names()).toEqual(['bulk-a', 'bulk-b']);
    await byName.click();
    expect(await page.locator('th', { has: byName }).getAttribute('aria-sort')).toBe('descending');
    expect(await names()).toEqual(['bulk-b', 'bulk-a']);
    await page.getByLabel('Select all shown').check();
    await page.getByRole('button', { name: 'Start selected' }).click();
    await expect.poll(() => stateOf('bulk-a').textContent(), { timeout: 20_000 }).toBe('running');
    await expect.poll(() => stateOf('bulk-b').textContent(), { timeout: 20_000 }).toBe('running');
    await page.screenshot({ path: join(OUTPUT_DIR, 'fleet-bulk.png'), fullPage: true });
    await page.getByLabel('Filter').fill('');
    await page.getByTestId('domain-mem').waitFor();
  }, 60_000);

  it('takes a WebSocket token from its subprotocol (never echoed back) and keeps the screen from a read-only token', async () => {
    const vnc = `${gateway.url.replace(/^http/, 'ws')}/v1/nodes/${NODE}/domains/screen/vnc`;
    const opened = (protocols: string[]) =>
      new Promise<{ protocol?: string; refused?: number }>((resolve) => {
        const socket = new WebSocket(vnc, protocols);
        socket.once('open', () => {
          resolve({ protocol: socket.protocol });
          socket.close();
        });
        socket.once('unexpected-response', (_request, response) => {
          resolve({ refused: response.statusCode });
          response.resume();
          socket.terminate();
        });
        socket.once('error', () => undefined);
      });
    expect(await opened(['binary', `virtbus.bearer.${admin.token}`])).toEqual({ protocol: 'binary' });
    expect(await opened(['binary'])).toEqual({ refused: 401 });
    expect(await opened(['binary', `virtbus.bearer.${reader.token}`])).toEqual({ refused: 403 });
    const asReader = (method: string, path: string, body?: unknown) =>
      fetch(`${gateway.url}/v1/nodes/${NODE}/domains/screen/${path}`, {
        method,
        headers: { authorization: `Bearer ${reader.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
    expect((await asReader('GET', 'screenshot')).status).toBe(403);
    expect((await asReader('POST', 'send-key', { keys: ['a'] })).status).toBe(403);
  }, 30_000);
  it('reads the fleet a page at a time: the rows past the first 100 after "Load more"', async () => {
    // the fleet lists by (node, name): webnode's linux, mem and screen and zz-000…zz-096 fill the first page (made-in-form moved to webnode2)
    for (let index = 0; index <= 100; index++) {
      expect((await api('POST', `/v1/nodes/${NODE}/domains`, { name: `zz-${String(index).padStart(3, '0')}`, driver: 'test' })).status).toBe(201);
    }
    await page.reload();
    await page.getByTestId('domain-zz-096').waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('domain-zz-100').count()).toBe(0);
    // a late DEFINED event may reload the first page: press again until the last row shows
    await expect
      .poll(
        async () => {
          const button = page.getByRole('button', { name: 'Load more' });
          if (await button.isVisible()) await button.click();
          return page.getByTestId('domain-zz-100').count();
        },
        { timeout: 30_000 },
      )
      .toBe(1);
    expect(await page.getByRole('button', { name: 'Load more' }).count()).toBe(0);
  }, 120_000);

  it('a read-only token sees no action buttons, and a call forced from the page gets 403', async () => {
    await page.goto(`${gateway.url}/ui/#/`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Token').fill(reader.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByTestId('caller').textContent()).toBe('ui-reader (read-only)');
    await expect.poll(() => stateOf('mem').textContent()).toBe('running');
    // every button left is navigation: sign out, Load more, tabs
    const actionButtons = /^(Start|Stop|Start selected|Stop selected|Shut down|Force shutdown|Reboot|Reset|Suspend|Resume|Destroy|Create.*|Upload|Download.*|Revert.*|Delete.*|Undefine|Detach.*|Attach.*|Migrate)$/;
    const visibleActions = async () => (await page.getByRole('button').allTextContents()).filter((text) => actionButtons.test(text.trim()));
    expect(await visibleActions()).toEqual([]);
    // no row checkboxes either: bulk start/stop is an operator's
    expect(await page.getByRole('table', { name: 'Domains' }).getByRole('checkbox').count()).toBe(0);
    await page.screenshot({ path: join(OUTPUT_DIR, 'fleet-read-only.png') });
    await page.getByRole('link', { name: 'mem', exact: true }).click();
    await expect.poll(() => page.getByTestId('domain-state').textContent()).toBe('running');
    expect(await page.getByRole('group', { name: 'Actions' }).count()).toBe(0);
    expect(await page.getByRole('tab', { name: 'Migrate' }).count()).toBe(0);
    await page.getByRole('tab', { name: 'Disks and NICs' }).click();
    await page.getByRole('table', { name: 'Disks' }).waitFor();
    expect(await visibleActions()).toEqual([]);
    await page.getByRole('tab', { name: 'Snapshots' }).click();
    await page.getByTestId('snapshot-base').waitFor();
    expect(await visibleActions()).toEqual([]);
    await page.screenshot({ path: join(OUTPUT_DIR, 'domain-read-only.png') });
    await page.getByRole('link', { name: 'Storage' }).click();
    await page.getByTestId('volume-upload.raw').waitFor();
    expect(await visibleActions()).toEqual([]);
    // the same call the hidden button would make, sent anyway with the page's token
    const forced = await page.evaluate(`(async () => {
      const token = sessionStorage.getItem('virtbus.token');
      const response = await fetch('/v1/nodes/${NODE}/domains/mem/state', { method: 'PUT', headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' }, body: JSON.stringify({ action: 'destroy' }) });
      return { status: response.status, body: await response.json() };
    })()`);
    expect(forced).toMatchObject({ status: 403, body: { code: 'FORBIDDEN' } });
    expect(((await api('GET', `/v1/nodes/${NODE}/domains/mem`)).body as { state: string }).state).toBe('running');
  }, 60_000);
  it('filters and sorts the whole fleet on the gateway (a row past the first page), and a new row still arrives live in that order', async () => {
    // still the read-only caller: filter and sort are reads. webnode's linux, mem, screen and zz-000…zz-096 fill the first page
    await page.goto(`${gateway.url}/ui/#/`);
    await page.getByTestId('domain-zz-096').waitFor();
    expect(await page.getByTestId('domain-zz-100').count()).toBe(0);
    // the name links: a read-only caller has no checkbox column
    const names = () => page.getByRole('table', { name: 'Domains' }).locator('tbody tr a').allTextContents();
    await page.getByLabel('Filter').fill('zz-100');
    await expect.poll(names).toEqual(['zz-100']);
    expect(await page.getByRole('button', { name: 'Load more' }).count()).toBe(0);
    await page.getByLabel('Filter').fill('');
    await page.getByTestId('domain-mem').waitFor();
    const byName = page.getByRole('button', { name: 'Name', exact: true });
    await byName.click();
    await byName.click();
    await expect.poll(async () => (await names())[0]).toBe('zz-100');
    expect(await page.locator('th', { has: byName }).getAttribute('aria-sort')).toBe('descending');
    expect((await api('POST', `/v1/nodes/${NODE}/domains`, { name: 'zzz-live', driver: 'test' })).status).toBe(201);
    await expect.poll(async () => (await names()).slice(0, 2)).toEqual(['zzz-live', 'zz-100']);
    await page.screenshot({ path: join(OUTPUT_DIR, 'fleet-server-sort.png') });
    expect((await api('DELETE', `/v1/nodes/${NODE}/domains/zzz-live`)).status).toBe(200);
    await expect.poll(async () => (await names())[0]).toBe('zz-100');
    // by node, descending: the second node's rows come first although the first page of the default order holds none
    const byNode = page.getByRole('button', { name: 'Node', exact: true });
    await byNode.click();
    await byNode.click();
    await expect.poll(() => page.getByRole('table', { name: 'Domains' }).locator('tbody tr:first-child a').getAttribute('href')).toContain(`/domains/${NODE2}/`);
  }, 60_000);

  it('creates a domain with a VNC password from the form: the API reports passwordSet, its screen asks for the password', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Token').fill(admin.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Create domain' }).click();
    await page.getByLabel('Driver').selectOption('test');
    await page.getByLabel('Name').fill('vnc-form');
    await page.getByLabel('Graphics console (VNC)').check();
    const password = page.getByLabel('VNC password');
    expect(await password.getAttribute('type')).toBe('password');
    await password.fill('f0rm-pw');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await expect.poll(() => stateOf('vnc-form').textContent()).toBe('shutoff');
    const read = await api('GET', `/v1/nodes/${NODE}/domains/vnc-form`);
    expect((read.body as { config: { graphics: unknown } }).config.graphics).toEqual({ type: 'vnc', video: 'std', passwordSet: true });
    expect((await api('PUT', `/v1/nodes/${NODE}/domains/vnc-form/state`, { action: 'start' })).status).toBe(200);
    await page.getByRole('link', { name: 'vnc-form', exact: true }).click();
    await page.getByRole('tab', { name: 'Screen' }).click();
    await expect.poll(() => page.getByTestId('vnc-status').textContent()).toBe('(password required)');
    await page.getByLabel('VNC password').fill('f0rm-pw');
    await page.getByRole('button', { name: 'Connect' }).click();
    await expect.poll(() => page.getByTestId('vnc-status').textContent()).toBe('(connected)');
    await page.screenshot({ path: join(OUTPUT_DIR, 'create-vnc-password.png') });
    expect((await api('PUT', `/v1/nodes/${NODE}/domains/vnc-form/state`, { action: 'destroy' })).status).toBe(200);
  }, 60_000);

  const signInAs = async (token: string, caller: string) => {
    await page.goto(`${gateway.url}/ui/#/`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByTestId('caller').textContent()).toBe(caller);
  };
  const uuidOf = async (node: string, name: string) => ((await api('GET', `/v1/nodes/${node}/domains/${name}`)).body as { uuid: string }).uuid;
  // whether RGBA pixels show the guest's VGA marker block and nothing else of its colour (a string: it runs in the page)
  const HAS_VGA_MARKER = `((pixels, width, height) => {
    const { columns, rows, block, rgb } = ${JSON.stringify(GUEST_VGA_MARKER)};
    const x0 = Math.round((block.column * width) / columns), x1 = Math.round(((block.column + block.width) * width) / columns);
    const y0 = Math.round((block.row * height) / rows), y1 = Math.round(((block.row + block.height) * height) / rows);
    let inside = 0, outside = 0;
    for (let at = 0; at < pixels.length; at += 4) {
      if (Math.abs(pixels[at] - rgb[0]) + Math.abs(pixels[at + 1] - rgb[1]) + Math.abs(pixels[at + 2] - rgb[2]) > 24) continue;
      const x = (at / 4) % width, y = Math.floor(at / 4 / width);
      if (x >= x0 && x < x1 && y >= y0 && y < y1) inside++; else outside++;
    }
    const area = (x1 - x0) * (y1 - y0);
    return inside >= area * 0.98 && outside <= area * 0.02;
  })`;

  it("the QEMU test guest's VGA marker shows in the noVNC canvas and in the API's screenshot", async () => {
    await signInAs(admin.token, 'ui-admin (admin)');
    await page.goto(`${gateway.url}/ui/#/domains/${NODE}/${await uuidOf(NODE, 'linux')}`);
    await page.getByRole('tab', { name: 'Screen' }).click();
    await expect.poll(() => page.getByTestId('vnc-status').textContent(), { timeout: 30_000 }).toBe('(connected)');
    await page.waitForFunction(
      `(() => {
        const canvas = document.querySelector('[data-testid="vnc-screen"] canvas');
        return !!canvas && canvas.width > 0 && ${HAS_VGA_MARKER}(canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data, canvas.width, canvas.height);
      })()`,
      undefined,
      { timeout: 30_000, polling: 250 },
    );
    const shot = (await page.evaluate(`(async () => {
      const response = await fetch('/v1/nodes/${NODE}/domains/linux/screenshot', { headers: { authorization: 'Bearer ${admin.token}' } });
      const image = await createImageBitmap(await response.blob());
      const context = new OffscreenCanvas(image.width, image.height).getContext('2d');
      context.drawImage(image, 0, 0);
      return { type: response.headers.get('content-type'), marker: ${HAS_VGA_MARKER}(context.getImageData(0, 0, image.width, image.height).data, image.width, image.height) };
    })()`)) as { type: string; marker: boolean };
    expect(shot).toEqual({ type: 'image/png', marker: true });
    const png = await fetch(`${gateway.url}/v1/nodes/${NODE}/domains/linux/screenshot`, { headers: { authorization: `Bearer ${admin.token}` } });
    await writeFile(join(OUTPUT_DIR, 'screen-vga-marker-api.png'), Buffer.from(await png.arrayBuffer()));
    await page.screenshot({ path: join(OUTPUT_DIR, 'screen-vga-marker.png'), fullPage: true });
  }, 60_000);

  it('creates a domain from an image volume with cloud-init user-data, and one from an ISO with a blank disk, in the form', async () => {
    const volumes = `/v1/nodes/${NODE}/storage-pools/default/volumes`;
    expect((await api('POST', volumes, { name: 'base.qcow2', capacity: '16M', format: 'qcow2' })).status).toBe(201);
    expect((await api('POST', volumes, { name: 'install.iso', capacity: '1M', format: 'raw' })).status).toBe(201);
    const fill = async (name: string, source: string, fields: Record<string, string>) => {
      await page.getByRole('button', { name: 'Create domain' }).click();
      await page.getByLabel('Driver').selectOption('qemu');
      await page.getByLabel('Name').fill(name);
      await page.getByLabel(source).check();
      for (const [label, value] of Object.entries(fields)) await page.getByLabel(label, { exact: true }).fill(value);
    };
    // the form opens before the node list arrives (as on a loaded machine): it still offers the nodes' drivers once it does
    await page.getByRole('link', { name: 'Storage' }).click();
    await page.getByTestId('pool-default').waitFor();
    const nodeList = (url: URL) => url.pathname === '/v1/nodes';
    await page.route(nodeList, async (route) => {
      await page.getByRole('heading', { name: 'Create a domain' }).waitFor();
      await route.continue();
    });
    await page.getByRole('link', { name: 'Fleet' }).click();
    await fill('from-image', 'Image volume with cloud-init', { 'Storage pool': 'default', 'Image volume': 'base.qcow2', 'Root disk size': '64M', 'cloud-init user-data': '#cloud-config\nhostname: ui-made\n' });
    await page.unroute(nodeList);
    await page.screenshot({ path: join(OUTPUT_DIR, 'create-from-image.png') });
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await expect.poll(() => stateOf('from-image').textContent(), { timeout: 20_000 }).toBe('shutoff');
    const fromImage = (await api('GET', `/v1/nodes/${NODE}/domains/from-image`)).body as { config: { disks: unknown[] } };
    expect(fromImage.config.disks).toMatchObject([
      { source: { pool: 'default', volume: 'from-image-root.qcow2' }, format: 'qcow2', bus: 'virtio' },
      { source: { pool: 'default', volume: 'from-image-cidata.iso' }, device: 'cdrom', format: 'raw', readonly: true },
    ]);
    expect(((await api('GET', `${volumes}/from-image-root.qcow2`)).body as { capacityBytes: number }).capacityBytes).toBe(64 * 2 ** 20);
    const seed = await fetch(`${gateway.url}${volumes}/from-image-cidata.iso/content`, { headers: { authorization: `Bearer ${admin.token}` } });
    expect(Buffer.from(await seed.arrayBuffer()).toString('latin1')).toContain('hostname: ui-made');

    await fill('from-iso', 'ISO and a blank disk', { 'Storage pool': 'default', 'ISO volume': 'install.iso', 'Blank disk size': '32M' });
    await page.screenshot({ path: join(OUTPUT_DIR, 'create-from-iso.png') });
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await expect.poll(() => stateOf('from-iso').textContent(), { timeout: 20_000 }).toBe('shutoff');
    const fromIso = (await api('GET', `/v1/nodes/${NODE}/domains/from-iso`)).body as { config: { os: { boot: string[] }; disks: unknown[] } };
    expect(fromIso.config.os.boot).toEqual(['cdrom', 'hd']);
    expect(fromIso.config.disks).toMatchObject([
      { source: { pool: 'default', volume: 'install.iso' }, device: 'cdrom', format: 'raw', readonly: true },
      { source: { pool: 'default', volume: 'from-iso-disk' }, device: 'disk', format: 'qcow2' },
    ]);
    expect(((await api('GET', `${volumes}/from-iso-disk`)).body as { capacityBytes: number }).capacityBytes).toBe(32 * 2 ** 20);
    for (const name of ['from-image', 'from-iso']) expect((await api('DELETE', `/v1/nodes/${NODE}/domains/${name}`)).status).toBe(200);
  }, 60_000);

  it("hotplugs a disk and a NIC into the running QEMU guest from its page, and unplugs them", async () => {
    const image = join(workDir, 'hotplug.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', image, '16M']);
    await page.goto(`${gateway.url}/ui/#/domains/${NODE}/${await uuidOf(NODE, 'linux')}`);
    await page.getByRole('tab', { name: 'Disks and NICs' }).click();
    await page.getByLabel('Disk image path').fill(image);
    await page.getByLabel('Target').fill('vdb');
    await page.getByRole('button', { name: 'Attach disk' }).click();
    const disks = page.getByRole('table', { name: 'Disks' });
    await expect.poll(() => disks.textContent(), { timeout: 20_000 }).toContain(image);
    // QEMU hotplugs tap NICs only: a second one on the guest's network (the field says so and is required)
    const network = page.getByLabel('Network', { exact: true });
    expect(await network.getAttribute('required')).not.toBeNull();
    await network.fill('lan');
    await page.getByRole('button', { name: 'Attach interface' }).click();
    const nics = page.getByRole('table', { name: 'Network interfaces' });
    await expect.poll(() => nics.locator('tbody tr').count(), { timeout: 20_000 }).toBe(2);
    const live = (await api('GET', `/v1/nodes/${NODE}/domains/linux`)).body as { liveDisks: { target: string; format: string }[]; config: { nics: { mac: string; source: string }[] } };
    expect(live.liveDisks).toMatchObject([{ target: 'vdb', format: 'qcow2' }]);
    expect(live.config.nics.map((nic) => nic.source)).toEqual(['lan', 'lan']);
    await page.screenshot({ path: join(OUTPUT_DIR, 'domain-hotplug.png'), fullPage: true });
    await page.getByRole('button', { name: 'Detach vdb' }).click();
    await expect.poll(() => disks.textContent(), { timeout: 20_000 }).not.toContain(image);
    await page.getByRole('button', { name: `Detach ${live.config.nics[1]!.mac}` }).click();
    await expect.poll(() => nics.locator('tbody tr').count(), { timeout: 20_000 }).toBe(1);
    expect(await page.getByRole('alert').count()).toBe(0);
  }, 60_000);

  it('starts and stops a network from the networks page', async () => {
    expect((await api('POST', `/v1/nodes/${NODE}/networks`, { name: 'uinet', mode: 'isolated', ipv4: { address: '10.79.0.1/24' } })).status).toBe(201);
    await page.getByRole('link', { name: 'Networks' }).click();
    const state = page.getByTestId('network-uinet').getByTestId('state');
    await expect.poll(() => state.textContent()).toBe('inactive');
    await page.getByRole('button', { name: 'Start network uinet' }).click();
    await expect.poll(() => state.textContent(), { timeout: 20_000 }).toBe('active');
    await page.screenshot({ path: join(OUTPUT_DIR, 'network-started.png') });
    await page.getByRole('button', { name: 'Stop network uinet' }).click();
    await expect.poll(() => state.textContent(), { timeout: 20_000 }).toBe('inactive');
    expect(((await api('GET', `/v1/nodes/${NODE}/networks/uinet`)).body as { state: string }).state).toBe('inactive');
    expect((await api('DELETE', `/v1/nodes/${NODE}/networks/uinet`)).status).toBe(200);
  }, 60_000);

  it('creates and deletes a pool and a volume from the storage page', async () => {
    await page.getByRole('link', { name: 'Storage' }).click();
    await page.getByLabel('Pool name').fill('uipool');
    await page.getByRole('button', { name: 'Create pool' }).click();
    await expect.poll(() => page.getByTestId('pool-uipool').locator('td').nth(2).textContent()).toBe('running');
    await page.getByRole('button', { name: 'Volumes of uipool' }).click();
    await page.getByLabel('New volume name').fill('made.raw');
    await page.getByLabel('Capacity').fill('8M');
    await page.getByLabel('Format').selectOption('raw');
    await page.getByRole('button', { name: 'Create volume' }).click();
    await page.getByTestId('volume-made.raw').waitFor();
    expect((await api('GET', `/v1/nodes/${NODE}/storage-pools/uipool/volumes/made.raw`)).body).toMatchObject({ format: 'raw', capacityBytes: 8 * 2 ** 20 });
    await page.screenshot({ path: join(OUTPUT_DIR, 'storage-pool-volume.png'), fullPage: true });
    await page.getByRole('button', { name: 'Delete volume made.raw' }).click();
    await expect.poll(() => page.getByTestId('volume-made.raw').count()).toBe(0);
    await page.getByRole('button', { name: 'Stop pool uipool' }).click();
    await expect.poll(() => page.getByTestId('pool-uipool').locator('td').nth(2).textContent()).toBe('inactive');
    await page.getByRole('button', { name: 'Undefine pool uipool' }).click();
    await expect.poll(() => page.getByTestId('pool-uipool').count()).toBe(0);
    expect((await api('GET', `/v1/nodes/${NODE}/storage-pools/uipool`)).status).toBe(404);
  }, 60_000);

  it('migrates a running QEMU domain live from its page, the progress bar following the operation', async () => {
    expect((await api('POST', `/v1/nodes/${NODE}/domains`, { name: 'hop', driver: 'qemu', memory: 64 })).status).toBe(201);
    expect((await api('PUT', `/v1/nodes/${NODE}/domains/hop/state`, { action: 'start' })).status).toBe(200);
    await page.goto(`${gateway.url}/ui/#/domains/${NODE}/${await uuidOf(NODE, 'hop')}`);
    await page.getByRole('tab', { name: 'Migrate' }).click();
    await expect.poll(() => page.getByLabel('Destination node').inputValue()).toBe(NODE2);
    // every state of the progress bar, also one shown for less time than a poll of this test takes
    await page.evaluate(`(() => {
      window.progressSeen = [];
      new MutationObserver(() => {
        const bar = document.querySelector('form progress');
        if (bar) window.progressSeen.push(bar.parentElement.textContent.trim() + ' ' + bar.value);
      }).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
    })()`);
    await page.getByRole('button', { name: 'Migrate' }).click();
    await expect.poll(() => page.locator('#domain-title small').textContent(), { timeout: 60_000 }).toBe(`on ${NODE2}`);
    await expect.poll(() => page.getByTestId('domain-state').textContent()).toBe('running');
    const seen = (await page.evaluate('window.progressSeen')) as string[];
    expect(seen.length, seen.join('; ')).toBeGreaterThan(0);
    expect(seen[0]).toMatch(/^Progress \(running\) \d+/);
    await page.screenshot({ path: join(OUTPUT_DIR, 'domain-migrated-live.png') });
    expect(((await api('GET', `/v1/nodes/${NODE2}/domains/hop`)).body as { state: string }).state).toBe('running');
    expect(((await api('GET', `/v1/nodes/${NODE}/domains/hop`)).body as { state: string }).state).toBe('shutoff');
    expect((await api('PUT', `/v1/nodes/${NODE2}/domains/hop/state`, { action: 'destroy' })).status).toBe(200);
  }, 90_000);
});

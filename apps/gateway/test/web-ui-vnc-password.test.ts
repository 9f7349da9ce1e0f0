import { existsSync } from 'node:fs';
import { mkdir, mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createToken } from '@virtbus/security';
import { type AgentProcess, DIST_DIR, type NatsServerHandle, REPO_ROOT, spawnAgent, startNatsServer, tearDown } from '@virtbus/testing';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../src/index.js';

const CHROMIUM = '/usr/bin/chromium';
const NODE = 'pwnode';
/** The test screen's colour comes from the uuid: 1b 2c 3d. */
const UUID = '1b2c3d4e-0000-4000-8000-00000000f00d';
const PASSWORD = 'open-s3s';
const OUTPUT_DIR = join(REPO_ROOT, 'test-results', 'web-ui');
const admin = createToken({ name: 'ui-admin', role: 'admin' });

let nats: NatsServerHandle;
let gateway: RunningGateway;
let nc: NatsConnection;
let workDir: string;
let agent: AgentProcess | undefined;
let browser: Browser;
let page: Page;

async function api(method: string, path: string, body?: unknown) {
  const response = await fetch(`${gateway.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${admin.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, text: await response.text() };
}

/** noVNC's canvas: its width and the top-left pixel (a string: this file is typed for Node, the check runs in the page). */
const canvasState = () =>
  page.evaluate(`(() => {
    const canvas = document.querySelector('[data-testid="vnc-screen"] canvas');
    if (!canvas || canvas.width === 0) return 'blank';
    return canvas.width + ':' + [...canvas.getContext('2d').getImageData(0, 0, 1, 1).data.subarray(0, 3)].join(',');
  })()`);

describe.skipIf(!existsSync(CHROMIUM))('web UI: a password-protected screen in a real browser (noVNC credentialsrequired)', () => {
  beforeAll(async () => {
    await mkdir(OUTPUT_DIR, { recursive: true });
    nats = await startNatsServer();
    workDir = await mkdtemp('/tmp/vbp-');
    nc = await connect({ servers: nats.url });
    agent = await spawnAgent({ node: NODE, natsUrl: nats.url, stateDir: join(workDir, 'agent'), drivers: 'test', extraArgs: ['--metrics-address', '127.0.0.1:0'] });
    gateway = await startGateway({ nc, host: '127.0.0.1', port: 0, heartbeatMs: 500, discoveryWaitMs: 500, uiDir: join(DIST_DIR, 'web'), security: { tokens: [admin.record] } });
    const defined = await api('POST', `/v1/nodes/${NODE}/domains`, { name: 'locked', uuid: UUID, driver: 'test', graphics: { type: 'vnc', password: PASSWORD } });
    expect(defined.status, defined.text).toBe(201);
    expect((await api('PUT', `/v1/nodes/${NODE}/domains/locked/state`, { action: 'start' })).status).toBe(200);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.setDefaultTimeout(20_000);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await tearDown(gateway, agent, nc, nats, workDir);
  }, 60_000);

  it('never returns the password in a read: the domain says passwordSet', async () => {
    const read = await api('GET', `/v1/nodes/${NODE}/domains/locked`);
    expect(read.text).not.toContain(PASSWORD);
    expect((JSON.parse(read.text) as { config: { graphics: unknown } }).config.graphics).toEqual({ type: 'vnc', video: 'std', passwordSet: true });
    expect((await api('GET', `/v1/nodes/${NODE}/domains`)).text).not.toContain(PASSWORD);
  });

  it('asks for the password in a labelled field, shows the refusal of a wrong one, and the screen only after the right one', async () => {
    await page.goto(`${gateway.url}/ui/`);
    await page.getByLabel('Token').fill(admin.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId(`node-${NODE}`).waitFor();
    await page.goto(`${gateway.url}/ui/#/domains/${NODE}/${UUID}`);
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
    await page.getByLabel('VNC password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Connect' }).click();
    await expect.poll(() => page.getByTestId('vnc-status').textContent()).toBe('(connected)');
    await expect.poll(canvasState).toBe('320:27,44,61');
    expect(await page.getByTestId('vnc-failure').count()).toBe(0);
    await page.screenshot({ path: join(OUTPUT_DIR, 'screen-password-accepted.png') });
  }, 60_000);
});

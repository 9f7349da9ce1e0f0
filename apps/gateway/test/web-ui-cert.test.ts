import { existsSync } from 'node:fs';
import { mkdir, mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DEFAULT_CLIENTS, generateSecurityBundle, type SecurityBundle } from '@virtbus/security';
import { type AgentProcess, DIST_DIR, hasBinaryOrSkip, type NatsServerHandle, REPO_ROOT, spawnAgent, startNatsServer, tearDown } from '@virtbus/testing';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../src/index.js';

const CHROMIUM = '/usr/bin/chromium';
const NODE = 'certnode';
const OUTPUT_DIR = join(REPO_ROOT, 'test-results', 'web-ui');

let nats: NatsServerHandle;
let nc: NatsConnection;
let workDir: string;
let bundle: SecurityBundle;
let agent: AgentProcess | undefined;
let gateway: RunningGateway;
let browser: Browser;

/** A browser context that presents the client certificate of bundle identity `name` (none: no certificate). */
async function contextAs(name?: string): Promise<BrowserContext> {
  const identity = name === undefined ? undefined : bundle.identities.find((candidate) => candidate.name === name)!;
  // the gateway's certificate comes from the test CA, which chromium does not trust
  return browser.newContext({
    viewport: { width: 1280, height: 800 },
    ignoreHTTPSErrors: true,
    ...(identity ? { clientCertificates: [{ origin: gateway.url, certPath: identity.files.cert, keyPath: identity.files.key }] } : {}),
  });
}

describe.skipIf(!existsSync(CHROMIUM) || !hasBinaryOrSkip('openssl'))('web UI over HTTPS: sign in with a TLS client certificate (Debian chromium)', () => {
  beforeAll(async () => {
    await mkdir(OUTPUT_DIR, { recursive: true });
    workDir = await mkdtemp('/tmp/vbwc-');
    bundle = await generateSecurityBundle({ outDir: join(workDir, 'security'), nodes: [NODE], clients: DEFAULT_CLIENTS });
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    agent = await spawnAgent({ node: NODE, natsUrl: nats.url, stateDir: join(workDir, 'agent'), drivers: 'test', extraArgs: ['--metrics-address', '127.0.0.1:0'] });
    gateway = await startGateway({
      nc,
      host: '127.0.0.1',
      port: 0,
      discoveryWaitMs: 500,
      uiDir: join(DIST_DIR, 'web'),
      tls: { cert: bundle.gatewayHttps.cert, key: bundle.gatewayHttps.key, ca: bundle.ca.cert },
      security: { tokens: [], certificates: {} },
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await tearDown(gateway, [agent], nc, nats, workDir);
  }, 60_000);

  it('signs in by the certificate the browser presents (no token, no Authorization header): its name and role, the buttons of that role', async () => {
    for (const [name, role, createButtons] of [
      ['admin', 'admin', 1],
      ['operator', 'operator', 0],
    ] as const) {
      const context = await contextAs(name);
      const page = await context.newPage();
      page.setDefaultTimeout(20_000);
      const authorizations: string[] = [];
      page.on('request', (request) => {
        const header = request.headers().authorization;
        if (header !== undefined) authorizations.push(header);
      });
      await page.goto(`${gateway.url}/ui/`);
      await page.getByRole('button', { name: 'Use a client certificate' }).click();
      await expect.poll(() => page.getByTestId('caller').textContent()).toBe(`${name} (${role})`);
      await page.getByTestId(`node-${NODE}`).waitFor();
      expect(await page.getByRole('button', { name: 'Create domain' }).count()).toBe(createButtons);
      if (role === 'admin') {
        // the certificate is enough for writes too: a domain defined in the form arrives live in the table
        await page.getByRole('button', { name: 'Create domain' }).click();
        await page.getByLabel('Name').fill('by-cert');
        await page.getByRole('button', { name: 'Create', exact: true }).click();
        await expect.poll(() => page.getByTestId('domain-by-cert').getByTestId('state').textContent()).toBe('shutoff');
        await page.screenshot({ path: join(OUTPUT_DIR, 'fleet-client-certificate.png') });
      } else {
        await page.getByRole('button', { name: 'Start by-cert' }).click();
        await expect.poll(() => page.getByTestId('domain-by-cert').getByTestId('state').textContent()).toBe('running');
      }
      expect(authorizations).toEqual([]);
      await context.close();
    }
  }, 90_000);

  it('without a certificate the same choice shows a clear error and stays on the sign-in page', async () => {
    const context = await contextAs();
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);
    await page.goto(`${gateway.url}/ui/`);
    await page.getByRole('button', { name: 'Use a client certificate' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('The browser presented no client certificate the gateway accepts');
    expect(await page.getByTestId('caller').count()).toBe(0);
    await page.screenshot({ path: join(OUTPUT_DIR, 'sign-in-no-certificate.png') });
    await context.close();
  }, 60_000);
});

import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent, type Agent } from '@virtbus/agent';
import { VirtClient } from '@virtbus/client';
import { createToken } from '@virtbus/security';
import { hasBinaryOrSkip, startNatsServer, startPrometheus, tearDown, type NatsServerHandle, type PrometheusHandle } from '@virtbus/testing';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../src/index.js';

const NODE = 'promcfg';
const PROMETHEUS_CONFIG = new URL('../../../deploy/prometheus/prometheus.yml', import.meta.url);

/** Replaces one exact piece of the shipped config; a piece that is gone fails the test instead of testing nothing. */
function replaceOnce(text: string, from: string, to: string): string {
  expect(text, `the shipped prometheus.yml contains ${from}`).toContain(from);
  return text.replace(from, to);
}

describe.skipIf(!hasBinaryOrSkip('prometheus'))('a real Prometheus with the shipped deploy/prometheus/prometheus.yml', () => {
  let workDir: string;
  let nats: NatsServerHandle;
  let agent: Agent;
  let gateway: RunningGateway;
  let prometheus: PrometheusHandle;

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'virtbus-promcfg-'));
    nats = await startNatsServer();
    agent = await startAgent({
      node: NODE,
      nats: { servers: nats.url },
      stateDir: join(workDir, 'agent'),
      drivers: ['test'],
      logger: pino({ level: 'silent' }),
      monitoring: { metricsAddress: '127.0.0.1:0', statsIntervalS: 0, metricsCacheMs: 0 },
    });
    await agent.storage.define({ name: 'scraped-pool', type: 'dir', target: join(workDir, 'pool') });
    await agent.storage.changeState('scraped-pool', { action: 'build' });
    await agent.storage.changeState('scraped-pool', { action: 'start' });
    const client = new VirtClient(agent.nc);
    const domain = await client.call(NODE, 'domain.define', { name: 'scraped-vm', driver: 'test', disks: [{ source: { path: '/var/lib/virtbus/scraped.qcow2' } }], nics: [{ type: 'user', mac: '52:54:00:aa:bb:cc' }] });
    await client.call(NODE, 'domain.state', { id: domain.uuid, change: { action: 'start' } });
    const scraper = createToken({ name: 'prometheus', role: 'read-only' });
    gateway = await startGateway({ natsUrl: nats.url, security: { tokens: [scraper.record] } });
    const tokenFile = join(workDir, 'gateway.token');
    await writeFile(tokenFile, scraper.token, { mode: 0o600 });

    let config = await readFile(PROMETHEUS_CONFIG, 'utf8');
    config = replaceOnce(config, 'scrape_interval: 15s', 'scrape_interval: 1s');
    config = replaceOnce(config, 'scrape_timeout: 10s', 'scrape_timeout: 1s');
    config = replaceOnce(config, "'127.0.0.1:9177'", `'${new URL(agent.metricsUrl!).host}'`);
    config = replaceOnce(config, "'127.0.0.1:8080'", `'${new URL(gateway.url).host}'`);
    config = replaceOnce(config, '/etc/prometheus/virtbus-gateway.token', tokenFile);
    prometheus = await startPrometheus({ config });
  });

  afterAll(() => tearDown(prometheus, gateway, agent, nats, workDir));

  it('scrapes the agent and the gateway (its /metrics on the API port, with the bearer token) as two instances', async () => {
    await prometheus.waitFor('up{job="virtbus-agent"}', ([up]) => up === 1);
    await prometheus.waitFor('up{job="virtbus-gateway"}', ([up]) => up === 1);
    const up = await prometheus.query('up');
    const instances = up.data.result.map((sample) => `${sample.metric.job} ${sample.metric.instance}`).sort();
    expect(instances).toEqual(['virtbus-agent 127.0.0.1/agent', 'virtbus-gateway 127.0.0.1/gateway']);
  });

  it('has process and Node.js metrics from both', async () => {
    for (const job of ['virtbus-agent', 'virtbus-gateway']) {
      await prometheus.waitFor(`process_cpu_user_seconds_total{job="${job}"}`, ([seconds]) => seconds! > 0);
      await prometheus.waitFor(`nodejs_eventloop_lag_seconds{job="${job}"}`, () => true);
    }
  });

  it('has the block and interface info series of a running domain', async () => {
    const [disk] = await prometheus.waitFor(
      'libvirt_domain_block_stats_info{domain="scraped-vm",target_device="vda",target_bus="virtio",driver_type="qcow2",source_file="/var/lib/virtbus/scraped.qcow2"}',
      () => true,
    );
    expect(disk).toBe(1);
    const [nic] = await prometheus.waitFor('libvirt_domain_interface_stats_info{domain="scraped-vm",mac_address="52:54:00:aa:bb:cc",interface_type="user",model_type="virtio"}', () => true);
    expect(nic).toBe(1);
  });

  it('has samples in every libvirt_storage_pool_* family', async () => {
    for (const family of ['state', 'capacity_bytes', 'allocation_bytes', 'available_bytes', 'timed_out']) {
      await prometheus.waitFor(`libvirt_storage_pool_${family}{storage_pool="scraped-pool",node="${NODE}"}`, () => true);
    }
    const [state] = await prometheus.values(`libvirt_storage_pool_state{storage_pool="scraped-pool"}`);
    expect(state).toBe(2);
    const [capacity] = await prometheus.values(`libvirt_storage_pool_capacity_bytes{storage_pool="scraped-pool"}`);
    expect(capacity).toBeGreaterThan(0);
  });
});

import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Domain } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { freePort, hasBinaryOrSkip, spawnAgent, startNatsServer, startPrometheus, tearDown, type AgentProcess, type NatsServerHandle, type PrometheusHandle } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const HAVE_BINARIES = hasBinaryOrSkip('prometheus') && hasBinaryOrSkip('qemu-system-x86_64');
const NODE = 'scraped';
const DEADLINE_MS = 400;

describe.skipIf(!HAVE_BINARIES)('a real Prometheus scraping an agent that runs a real QEMU domain', () => {
  let workDir: string;
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let client: VirtClient;
  let agent: AgentProcess;
  let metricsUrl: string;
  let prometheus: PrometheusHandle | undefined;
  let domain: Domain;
  let qemuPid: number | undefined;

  const query = (expr: string) => prometheus!.values(expr);
  const waitForQuery = (expr: string, accept: (values: number[]) => boolean, timeoutMs?: number) => prometheus!.waitFor(expr, accept, timeoutMs);

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'virtbus-prometheus-'));
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    client = new VirtClient(nc);
    const metricsPort = await freePort();
    agent = await spawnAgent({
      node: NODE,
      natsUrl: nats.url,
      stateDir: join(workDir, 'agent'),
      drivers: 'test,qemu',
      extraArgs: ['--metrics-address', `127.0.0.1:${metricsPort}`, '--metrics-cache-ms', '500', '--stats-deadline-ms', String(DEADLINE_MS), '--stats-interval', '0'],
    });
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;

    // No boot media: SeaBIOS runs under TCG and the QEMU process keeps using CPU.
    domain = await client.call(NODE, 'domain.define', { name: 'scraped-vm', driver: 'qemu', vcpus: 1, memory: 64 });
    domain = await client.call(NODE, 'domain.state', { id: domain.uuid, change: { action: 'start' } });
    const record = JSON.parse(await readFile(join(workDir, 'agent', 'domains', `${domain.uuid}.json`), 'utf8')) as { runtime?: { pid?: number } };
    qemuPid = record.runtime?.pid;

    prometheus = await startPrometheus({ targets: [`127.0.0.1:${metricsPort}`] });
  });

  afterAll(async () => {
    if (qemuPid) {
      try {
        process.kill(qemuPid, 'SIGCONT');
      } catch {
        // already gone
      }
    }
    if (domain) {
      await client.call(NODE, 'domain.state', { id: domain.uuid, change: { action: 'destroy' } }).catch(() => undefined);
      await client.call(NODE, 'domain.undefine', { id: domain.uuid }).catch(() => undefined);
    }
    await tearDown(prometheus, agent, nc, nats, workDir);
  });

  it("finds the domain's CPU time increasing through Prometheus' HTTP API", async () => {
    expect(domain.state).toBe('running');
    const selector = `libvirt_domain_info_cpu_time_seconds_total{job="virtbus-agent",domain="scraped-vm",uuid="${domain.uuid}",node="${NODE}"}`;
    const [first] = await waitForQuery(selector, () => true);
    const [later] = await waitForQuery(selector, ([value]) => value! > first!);
    console.info(`prometheus: QEMU domain cpu_time_seconds_total ${first} -> ${later}`);
    expect(later).toBeGreaterThan(first!);
    const [state] = await query(`libvirt_domain_info_state{uuid="${domain.uuid}"}`);
    expect(state).toBe(1);
  });

  it('a QEMU stopped with SIGSTOP (stuck QMP) does not make a scrape exceed its deadline', async () => {
    expect(qemuPid, 'the QEMU pid from the agent state dir').toBeGreaterThan(0);
    process.kill(qemuPid!, 'SIGSTOP');
    // Let the cached collection expire so the next scrape must ask the stuck QMP.
    await sleep(1000);
    const timings: number[] = [];
    let body = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      const started = performance.now();
      body = await (await fetch(metricsUrl)).text();
      timings.push(Math.round(performance.now() - started));
      if (body.includes(`libvirt_domain_timed_out{domain="scraped-vm",uuid="${domain.uuid}",node="${NODE}"} 1`)) break;
      await sleep(600);
    }
    console.info(`direct scrapes with QEMU stopped (deadline ${DEADLINE_MS} ms): ${timings.join(', ')} ms`);
    expect(body).toContain(`libvirt_domain_timed_out{domain="scraped-vm",uuid="${domain.uuid}",node="${NODE}"} 1`);
    // The last good CPU time is still served.
    expect(body).toMatch(new RegExp(`libvirt_domain_info_cpu_time_seconds_total\\{domain="scraped-vm",uuid="${domain.uuid}",node="${NODE}"\\} \\d`));
    for (const ms of timings) expect(ms).toBeLessThan(DEADLINE_MS + 600);

    await waitForQuery(`libvirt_domain_timed_out{uuid="${domain.uuid}"}`, ([value]) => value === 1);
    await sleep(3000);
    const [minUp] = await query('min_over_time(up{job="virtbus-agent"}[3s])');
    const [maxDuration] = await query('max_over_time(scrape_duration_seconds{job="virtbus-agent"}[3s])');
    console.info(`prometheus with QEMU stopped: min up over 3 s = ${minUp}, max scrape_duration_seconds = ${maxDuration}`);
    expect(minUp).toBe(1);
    expect(maxDuration).toBeLessThan(1);

    process.kill(qemuPid!, 'SIGCONT');
    await waitForQuery(`libvirt_domain_timed_out{uuid="${domain.uuid}"}`, ([value]) => value === 0);
  });
});

import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createDomainMetrics, type DomainListing, type DomainStatsSource, type StoragePoolListing } from './domain-metrics.js';
import { fullStats } from './spec-fixtures.js';

const WEB = '11111111-1111-4111-8111-111111111111';
const STUCK = '22222222-2222-4222-8222-222222222222';
const OFF = '33333333-3333-4333-8333-333333333333';
const BROKEN = '44444444-4444-4444-8444-444444444444';

const listing = (uuid: string, name: string, state: DomainListing['state']): DomainListing => ({
  uuid,
  name,
  state,
  reason: state === 'running' ? 'booted' : 'shutdown',
  vcpus: 2,
  memoryMiB: 256,
});

const stats = fullStats;

/** A source in the shape the agent provides: WEB's CPU grows per call, STUCK answers once then hangs like a SIGSTOPped QEMU. */
function makeSource() {
  const calls = new Map<string, number>();
  const pools: StoragePoolListing[] = [{ name: 'default', state: 'running', capacityBytes: 1000, allocationBytes: 400, availableBytes: 600 }];
  const source: DomainStatsSource & { calls: Map<string, number>; hangListing: boolean } = {
    calls,
    hangListing: false,
    async listDomains() {
      if (this.hangListing) return new Promise<never>(() => undefined);
      return [listing(WEB, 'web', 'running'), listing(STUCK, 'stuck', 'running'), listing(OFF, 'off', 'shutoff'), listing(BROKEN, 'broken', 'running')];
    },
    async domainStats(uuid) {
      const n = (calls.get(uuid) ?? 0) + 1;
      calls.set(uuid, n);
      if (uuid === WEB) return stats(WEB, 'web', n * 1_000_000_000);
      if (uuid === STUCK) return n === 1 ? stats(STUCK, 'stuck', 7_000_000_000) : new Promise<never>(() => undefined);
      throw Object.assign(new Error('qmp socket closed'), { code: 'OPERATION_FAILED' });
    },
    async listPools() {
      return pools;
    },
  };
  return source;
}

type MetricJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

function values(metrics: MetricJson, name: string) {
  const metric = metrics.find((m) => m.name === name);
  if (!metric) throw new Error(`no metric ${name}`);
  return metric.values;
}

function valueFor(list: { labels: Record<string, unknown>; value: number }[], labels: Record<string, string>): number | undefined {
  return list.find((entry) => Object.entries(labels).every(([key, value]) => entry.labels[key] === value))?.value;
}

/** Guards against a collector that would hang forever on the stuck domain. */
async function withinGuard<T>(promise: Promise<T>, guardMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`did not return within ${guardMs} ms`)), guardMs)));
  try {
    return await Promise.race([promise, guard]);
  } finally {
    clearTimeout(timer);
  }
}

describe('createDomainMetrics', () => {
  it('exports inovex libvirt-exporter names with domain, uuid and node labels, ns converted to seconds', async () => {
    const registry = new Registry();
    const source = makeSource();
    const errors: string[] = [];
    createDomainMetrics({ registry, node: 'n1', source, cacheIntervalMs: 0, deadlineMs: 300, onError: (uuid) => errors.push(uuid) });

    const text = await registry.metrics();
    expect(text).toContain('libvirt_up{node="n1"} 1');
    expect(text).toContain('libvirt_domains{node="n1"} 4');
    expect(text).toContain('libvirt_domain_info_state{domain="web",uuid="' + WEB + '",node="n1",state_desc="the domain is running"} 1');
    expect(text).toContain('libvirt_domain_info_state{domain="off",uuid="' + OFF + '",node="n1",state_desc="the domain is shut off"} 5');
    expect(text).toContain('# TYPE libvirt_domain_info_cpu_time_seconds_total counter');
    expect(text).toContain(`libvirt_domain_info_cpu_time_seconds_total{domain="stuck",uuid="${STUCK}",node="n1"} 7`);
    expect(text).toContain(`libvirt_domain_block_stats_read_time_seconds_total{domain="web",uuid="${WEB}",node="n1",target_device="vda"} 0.002`);
    expect(text).toContain(`libvirt_domain_interface_stats_transmit_bytes_total{domain="web",uuid="${WEB}",node="n1",target_device="vnet0"} 2000`);
    expect(text).toContain(`libvirt_domain_vcpu_time_seconds_total{domain="web",uuid="${WEB}",node="n1",vcpu="0"} 1.5`);
    expect(text).toContain(`libvirt_domain_vcpu_state{domain="web",uuid="${WEB}",node="n1",vcpu="1"} 2`);
    expect(text).toContain(`libvirt_domain_memory_stats_used_percent{domain="web",uuid="${WEB}",node="n1"} 25`);
    expect(text).toContain('libvirt_storage_pool_capacity_bytes{storage_pool="default",node="n1"} 1000');
    expect(text).toContain('libvirt_storage_pool_state{storage_pool="default",node="n1"} 2');
    // A shut-off domain has info from its definition and no hypervisor stats.
    expect(text).toContain(`libvirt_domain_info_maximum_memory_bytes{domain="off",uuid="${OFF}",node="n1"} 268435456`);
    expect(text).toContain(`libvirt_domain_info_cpu_time_seconds_total{domain="off",uuid="${OFF}",node="n1"} 0`);
    expect(text).not.toContain(`libvirt_domain_block_stats_read_bytes_total{domain="off"`);
    // A failing domain is reported to onError, keeps its info metrics and is not flagged as timed out.
    expect(errors).toEqual([BROKEN]);
    expect(text).toContain(`libvirt_domain_info_state{domain="broken",uuid="${BROKEN}",node="n1",state_desc="the domain is running"} 1`);
    expect(text).toContain(`libvirt_domain_timed_out{domain="broken",uuid="${BROKEN}",node="n1"} 0`);
    expect(source.calls.get(OFF)).toBeUndefined();
  });

  it('serves a stuck domain its last good values with timed_out 1, within the deadline, without piling up calls', async () => {
    const registry = new Registry();
    const source = makeSource();
    const deadlineMs = 250;
    createDomainMetrics({ registry, node: 'n1', source, cacheIntervalMs: 0, deadlineMs });

    await registry.metrics(); // first scrape: STUCK answered
    const timings: number[] = [];
    for (let scrape = 0; scrape < 3; scrape++) {
      const started = performance.now();
      await withinGuard(registry.metrics(), 5_000);
      timings.push(performance.now() - started);
    }
    console.info(`collect() with a stuck domain, deadline ${deadlineMs} ms: ${timings.map((t) => t.toFixed(0)).join(', ')} ms`);

    const scraped = await registry.getMetricsAsJSON();
    const timedOut = values(scraped, 'libvirt_domain_timed_out');
    expect(valueFor(timedOut, { uuid: STUCK })).toBe(1);
    expect(valueFor(timedOut, { uuid: WEB })).toBe(0);
    const cpu = values(scraped, 'libvirt_domain_info_cpu_time_seconds_total');
    expect(valueFor(cpu, { uuid: STUCK })).toBe(7);
    // WEB kept refreshing while STUCK hung: one call per scrape (5 scrapes including the two above).
    expect(valueFor(cpu, { uuid: WEB })).toBe(5);
    // The hung call is shared by later scrapes instead of starting a new one each time.
    expect(source.calls.get(STUCK)).toBe(2);
  });

  it('refreshes at most once per cache interval, sharing one refresh among the metrics of a scrape', async () => {
    const registry = new Registry();
    const source = makeSource();
    const metrics = createDomainMetrics({ registry, node: 'n1', source, cacheIntervalMs: 60_000, deadlineMs: 200 });
    await registry.metrics();
    await registry.metrics();
    expect(source.calls.get(WEB)).toBe(1);
    await metrics.refresh();
    expect(source.calls.get(WEB)).toBe(2);
  });

  it('reports libvirt_up 0 and keeps the last values flagged when listing domains hangs', async () => {
    const registry = new Registry();
    const source = makeSource();
    createDomainMetrics({ registry, node: 'n1', source, cacheIntervalMs: 0, deadlineMs: 200 });
    await registry.metrics();
    source.hangListing = true;
    const text = await withinGuard(registry.metrics(), 5_000);
    expect(text).toContain('libvirt_up{node="n1"} 0');
    expect(text).toContain(`libvirt_domain_timed_out{domain="web",uuid="${WEB}",node="n1"} 1`);
    expect(text).toContain(`libvirt_domain_info_cpu_time_seconds_total{domain="web",uuid="${WEB}",node="n1"} 1`);
  });

  it('exports libvirt_domain_info and libvirt_domain_job_info_* for active domains: type 2 with the job figures while one runs, 0 otherwise', async () => {
    const registry = new Registry();
    const source = makeSource();
    const list = source.listDomains.bind(source);
    const os = { type: 'hvm', arch: 'x86_64', machine: 'q35' };
    const job = { startedAt: Date.now() - 3_000, dataTotalBytes: 1000, dataProcessedBytes: 400, memoryTotalBytes: 64, memoryProcessedBytes: 16, memoryRemainingBytes: 48 };
    source.listDomains = async () => (await list()).map((entry) => ({ ...entry, os, ...(entry.uuid === WEB ? { job } : {}) }));
    createDomainMetrics({ registry, node: 'n1', source, cacheIntervalMs: 0, deadlineMs: 300 });

    const text = await registry.metrics();
    expect(text).toContain(`libvirt_domain_info{domain="web",uuid="${WEB}",node="n1",os_type="hvm",os_type_arch="x86_64",os_type_machine="q35"} 1`);
    expect(text).toContain('# TYPE libvirt_domain_job_info_type gauge');
    expect(text).toContain(`libvirt_domain_job_info_type{domain="web",uuid="${WEB}",node="n1"} 2`);
    expect(text).toContain(`libvirt_domain_job_info_type{domain="stuck",uuid="${STUCK}",node="n1"} 0`);
    expect(text).not.toContain(`libvirt_domain_job_info_type{domain="off"`);
    expect(text).toContain(`libvirt_domain_job_info_data_remaining_bytes{domain="web",uuid="${WEB}",node="n1"} 600`);
    expect(text).toContain(`libvirt_domain_job_info_memory_remaining_bytes{domain="web",uuid="${WEB}",node="n1"} 48`);
    expect(text).toContain(`libvirt_domain_job_info_file_total_bytes{domain="web",uuid="${WEB}",node="n1"} 0`);
    const elapsed = valueFor(values(await registry.getMetricsAsJSON(), 'libvirt_domain_job_info_time_elapsed_seconds'), { uuid: WEB });
    expect(elapsed).toBeGreaterThanOrEqual(3);
  });
});

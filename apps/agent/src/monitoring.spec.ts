import { describe, expect, it } from 'vitest';
import { configFromArgs } from './config.js';
import { parseMetricsAddress, withJobs } from './monitoring.js';

describe('metrics address', () => {
  it('parses host:port, [v6]:port and off', () => {
    expect(parseMetricsAddress('127.0.0.1:9177')).toEqual({ host: '127.0.0.1', port: 9177 });
    expect(parseMetricsAddress('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseMetricsAddress('off')).toBeUndefined();
  });

  it('refuses anything else', () => {
    for (const bad of ['9177', '127.0.0.1', '127.0.0.1:99999', 'host:port', '']) expect(() => parseMetricsAddress(bad), bad).toThrow(/host:port or off/);
  });
});

describe('agent monitoring flags', () => {
  const base = ['--node', 'n1', '--state-dir', '/tmp/x', '--drivers', 'test'];

  it('defaults to loopback metrics, 10 s stats and the documented stream limits', () => {
    const config = configFromArgs(base, {});
    if (config === 'help') throw new Error('help');
    expect(config.monitoring).toEqual({ metricsAddress: '127.0.0.1:9177', metricsCacheMs: 5000, statsDeadlineMs: 2000, statsIntervalS: 10 });
    expect(config.streamLimits).toEqual({ maxAgeMs: 7 * 24 * 3600 * 1000, maxMessages: 1_000_000 });
  });

  it('takes flags over the environment', () => {
    const config = configFromArgs(
      [...base, '--metrics-address', 'off', '--stats-interval', '0', '--events-max-age', '60', '--events-max-messages', '500'],
      { VIRTBUS_METRICS_ADDRESS: '0.0.0.0:1', VIRTBUS_METRICS_CACHE_MS: '250' },
    );
    if (config === 'help') throw new Error('help');
    expect(config.monitoring).toMatchObject({ metricsAddress: 'off', metricsCacheMs: 250, statsIntervalS: 0 });
    expect(config.streamLimits).toEqual({ maxAgeMs: 60_000, maxMessages: 500 });
  });

  it('refuses a negative or non-numeric interval', () => {
    expect(() => configFromArgs([...base, '--stats-interval', '-1'], {})).toThrow(/--stats-interval/);
    expect(() => configFromArgs([...base, '--metrics-cache-ms', 'soon'], {})).toThrow(/--metrics-cache-ms/);
  });
});

describe('domain jobs for libvirt_domain_job_info_*', () => {
  const A = '11111111-1111-4111-8111-111111111111';
  const B = '22222222-2222-4222-8222-222222222222';
  const listing = (uuid: string) => ({ uuid, name: uuid.slice(0, 1), state: 'running' as const, reason: 'booted' as const, vcpus: 1, memoryMiB: 64 });
  const operation = (uuid: string, status: 'running' | 'success', processed: number, total: number, createdAt: string, ram?: number) => ({
    id: '33333333-3333-4333-8333-333333333333',
    class: 'task' as const,
    description: 'x',
    status,
    progress: { percent: 0, bytesProcessed: processed, bytesTotal: total },
    resources: { domain: uuid },
    createdAt,
    updatedAt: createdAt,
    ...(ram ? { migration: { phase: 'copying-ram' as const, ramTransferredBytes: ram, ramRemainingBytes: 2 * ram, ramTotalBytes: 3 * ram, iteration: 1, dirtyPagesRate: 0, diskProcessedBytes: 0, diskTotalBytes: 0 } } : {}),
  });

  it("sums a domain's running operations into one job, keeps the earliest start and the migration's RAM figures, ignores finished ones", () => {
    const [a, b] = withJobs([listing(A), listing(B)], [
      operation(A, 'running', 10, 100, '2026-01-01T00:00:02Z'),
      operation(A, 'running', 5, 50, '2026-01-01T00:00:01Z', 7),
      operation(B, 'success', 50, 50, '2026-01-01T00:00:01Z'),
    ]);
    expect(a!.job).toEqual({ startedAt: Date.parse('2026-01-01T00:00:01Z'), dataTotalBytes: 150, dataProcessedBytes: 15, memoryTotalBytes: 21, memoryProcessedBytes: 7, memoryRemainingBytes: 14 });
    expect(b!.job).toBeUndefined();
  });
});

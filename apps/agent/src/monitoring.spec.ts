import { describe, expect, it } from 'vitest';
import { configFromArgs } from './config.js';
import { parseMetricsAddress } from './monitoring.js';

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

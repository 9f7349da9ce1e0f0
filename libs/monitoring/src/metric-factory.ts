import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Seconds; lifecycle operations wait for guests, so the buckets reach a minute. */
export const REQUEST_DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Metric constructors bound to one registry, so each metric of a process is its name, help and labels. */
export function metricsIn(registry: Registry) {
  return {
    histogram<L extends string>(name: string, help: string, labelNames: readonly L[], buckets: number[] = REQUEST_DURATION_BUCKETS) {
      return new Histogram<L>({ name, help, labelNames, buckets, registers: [registry] });
    },
    counter<L extends string>(name: string, help: string, labelNames: readonly L[] = []) {
      return new Counter<L>({ name, help, labelNames, registers: [registry] });
    },
    /** A gauge set at scrape time by `collect`. */
    gauge<L extends string>(name: string, help: string, labelNames: readonly L[], collect: (this: Gauge<L>) => void | Promise<void>) {
      return new Gauge<L>({ name, help, labelNames, registers: [registry], collect });
    },
  };
}

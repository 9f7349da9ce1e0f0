import { collectDefaultMetrics, type Registry } from 'prom-client';

/** Gauges named like counters, which `promtool check metrics` rejects; their per-type twins without `_total` stay. */
const MISNAMED_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** prom-client's process_* and nodejs_* metrics (CPU, memory, event-loop lag, GC, handles) on one process' registry. */
export function createProcessMetrics(options: { registry: Registry }): void {
  collectDefaultMetrics({ register: options.registry });
  for (const name of MISNAMED_GAUGES) options.registry.removeSingleMetric(name);
}

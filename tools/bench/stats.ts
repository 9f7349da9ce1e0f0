export interface LatencySummary {
  count: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  throughputPerSec: number;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

export function summarize(latenciesMs: readonly number[], wallMs: number): LatencySummary {
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50Ms: percentile(sorted, 50),
    p90Ms: percentile(sorted, 90),
    p99Ms: percentile(sorted, 99),
    throughputPerSec: wallMs > 0 ? (sorted.length * 1000) / wallMs : 0,
  };
}

/** Runs `call` `total` times with at most `inFlight` outstanding, timing each call. */
export async function load(call: () => Promise<unknown>, inFlight: number, total: number): Promise<LatencySummary> {
  const { latencies, wallMs } = await timeCalls(call, inFlight, total);
  return summarize(latencies, wallMs);
}

/** `load`'s timings before summarizing: each call's ms and the wall time. */
export async function timeCalls(call: () => Promise<unknown>, inFlight: number, total: number): Promise<{ latencies: number[]; wallMs: number }> {
  const latencies: number[] = [];
  let started = 0;
  const wallStart = performance.now();
  const worker = async () => {
    while (started < total) {
      started++;
      const begin = performance.now();
      await call();
      latencies.push(performance.now() - begin);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return { latencies, wallMs: performance.now() - wallStart };
}

/** The middle value (the upper one of an even count). */
export const median = (values: readonly number[]): number => [...values].sort((a, b) => a - b)[values.length >> 1]!;

export const round = (value: number, digits = 3) => Number(value.toFixed(digits));

import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './nats-server.js';
import { requireBinary } from './binaries.js';

export interface PromQueryResult {
  status: string;
  error?: string;
  data: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
}

export interface PrometheusHandle {
  readonly url: string;
  readonly pid: number;
  /** An instant query as Prometheus answers it. */
  query(expr: string): Promise<PromQueryResult>;
  /** The sample values of an instant query. */
  values(expr: string): Promise<number[]>;
  /** Polls an instant query until `accept` holds for its samples; returns the last samples. */
  waitFor(expr: string, accept: (values: number[]) => boolean, timeoutMs?: number): Promise<number[]>;
  log(): string;
  stop(): Promise<void>;
}

/**
 * A real Prometheus on a free loopback port scraping `targets` every second (timeout 1 s: a scrape that waits on a
 * stuck collector fails), or with a whole `config` (e.g. the shipped one with test targets), with its own storage in a
 * temp dir that `stop()` removes with the process.
 */
export async function startPrometheus(options: { targets: string[]; jobName?: string } | { config: string }): Promise<PrometheusHandle> {
  const binary = requireBinary('prometheus');
  const dir = await mkdtemp(join(tmpdir(), 'virtbus-prometheus-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config = 'config' in options ? options.config : [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 1s',
    'scrape_configs:',
    `  - job_name: ${options.jobName ?? 'virtbus-agent'}`,
    '    static_configs:',
    `      - targets: [${options.targets.map((target) => `'${target}'`).join(', ')}]`,
    '',
  ].join('\n');
  await writeFile(join(dir, 'prometheus.yml'), config);
  const child = spawn(
    binary,
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  const keep = (chunk: Buffer) => (log = (log + chunk.toString()).slice(-8000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise((resolve) => child.once('exit', resolve));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    await rm(dir, { recursive: true, force: true });
  };

  const until = Date.now() + 30_000;
  while (!(await fetch(`${url}/-/ready`).then((response) => response.ok, () => false))) {
    if (child.exitCode !== null || Date.now() > until) {
      await stop();
      throw new Error(`prometheus did not become ready on ${url}\n${log}`);
    }
    await sleep(100);
  }

  const query = async (expr: string) => (await (await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`)).json()) as PromQueryResult;
  const values = async (expr: string) => (await query(expr)).data.result.map((sample) => Number(sample.value[1]));
  return {
    url,
    pid: child.pid!,
    query,
    values,
    async waitFor(expr, accept, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      let last: number[] = [];
      while (Date.now() < deadline) {
        last = await values(expr);
        if (last.length > 0 && accept(last)) return last;
        await sleep(250);
      }
      throw new Error(`${expr}: still ${JSON.stringify(last)} after ${timeoutMs} ms\n${log}`);
    },
    log: () => log,
    stop,
  };
}

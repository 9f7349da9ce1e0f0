import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '@virtbus/testing';
import { benchBus, type BusBenchResult } from './bus.js';
import { round, type LatencySummary } from './stats.js';

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, only: { type: 'string' } }, strict: true });
const selected = (name: string) => !values.only || values.only.split(',').includes(name);

const fmt = (s: LatencySummary) => `${round(s.p50Ms)} | ${round(s.p99Ms)} | ${Math.round(s.throughputPerSec)}`;

function busMarkdown(result: BusBenchResult): string {
  const rows = (['raw', 'agent', 'gateway'] as const).map((name) => `| ${name} | ${fmt(result[name].c1)} | ${fmt(result[name].c64)} |`);
  return [
    '## Request/reply: raw NATS vs agent vs gateway',
    '',
    `Read call: \`domain.get\` on the test driver (raw: a trivial responder). ${result.requests.inFlight1} requests at 1 in flight, ${result.requests.inFlight64} at 64.`,
    '',
    '| path | p50 ms (1) | p99 ms (1) | req/s (1) | p50 ms (64) | p99 ms (64) | req/s (64) |',
    '|---|---|---|---|---|---|---|',
    ...rows,
    '',
    '| ratio | measured | target |',
    '|---|---|---|',
    `| agent p50 / raw p50 | ${result.ratios.agentP50VsRaw} | ≤ 1.5 |`,
    `| gateway p50 / raw p50 | ${result.ratios.gatewayP50VsRaw} | ≤ 2.5 |`,
    `| gateway req/s at 64 / raw | ${result.ratios.gatewayThroughput64VsRaw} | ≥ 0.6 |`,
    `| agent req/s at 64 / raw | ${result.ratios.agentThroughput64VsRaw} | — |`,
    '',
  ].join('\n');
}

const report: Record<string, unknown> = { startedAt: new Date().toISOString(), node: process.version, quick: values.quick };
const sections: string[] = [`# virtbus benchmark — ${report.startedAt as string}`, ''];

if (selected('bus')) {
  const bus = await benchBus({ quick: values.quick });
  report.bus = bus;
  sections.push(busMarkdown(bus));
  console.log(busMarkdown(bus));
}

const dir = join(REPO_ROOT, 'bench-results');
await mkdir(dir, { recursive: true });
const stamp = (report.startedAt as string).replace(/[:.]/g, '-');
await writeFile(join(dir, `bench-${stamp}.json`), `${JSON.stringify(report, null, 2)}\n`);
await writeFile(join(dir, `bench-${stamp}.md`), sections.join('\n'));
await writeFile(join(dir, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
await writeFile(join(dir, 'latest.md'), sections.join('\n'));
console.log(`report: ${join(dir, `bench-${stamp}.md`)}`);
process.exit(0);

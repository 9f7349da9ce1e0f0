import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '@virtbus/testing';
import { benchBus, type BusBenchResult } from './bus.js';
import { benchFleet, type FleetBenchResult } from './fleet.js';
import { benchOutage, type OutageBenchResult } from './outage.js';
import { benchMonitoring, type MonitoringBenchResult } from './monitoring.js';
import { benchMigration, type MigrationBenchResult } from './migration.js';
import { benchQemu, type AccelBench, type QemuBenchResult } from './qemu.js';
import { round, type LatencySummary } from './stats.js';
import { benchStorage, type StorageBenchResult } from './storage.js';

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, only: { type: 'string' } }, strict: true });
const selected = (name: string) => !values.only || values.only.split(',').includes(name);

const fmt = (s: LatencySummary) => `${round(s.p50Ms)} | ${round(s.p99Ms)} | ${Math.round(s.throughputPerSec)}`;

function busMarkdown(result: BusBenchResult): string {
  const rows = (['raw', 'agent', 'gateway', 'httpForwarder'] as const).map((name) => `| ${name} | ${fmt(result[name].c1)} | ${fmt(result[name].c64)} |`);
  return [
    '## Request/reply: raw NATS vs agent vs gateway',
    '',
    `Read call: \`domain.get\` on the test driver (raw: a trivial responder). ${result.requests.inFlight1} requests at 1 in flight, ${result.requests.inFlight64} at 64.`,
    'httpForwarder: plain node:http forwarding the same bus call (no framework, auth, schemas or metrics), the floor for any HTTP front here.',
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
    `| plain HTTP forwarder req/s at 64 / raw | ${result.ratios.forwarderThroughput64VsRaw} | — |`,
    `| gateway req/s at 64 / plain HTTP forwarder | ${result.ratios.gatewayThroughput64VsForwarder} | — |`,
    '',
  ].join('\n');
}

const p50p90 = (s: LatencySummary) => `${round(s.p50Ms, 1)} | ${round(s.p90Ms, 1)}`;

function accelRows(label: string, result: AccelBench | { skipped: string }): string[] {
  if ('skipped' in result) return [`| ${label} | skipped: ${result.skipped} | | | |`];
  const { ratios } = result;
  return [
    `| ${label} | bare spawn → QMP query-status (start floor) | ${p50p90(result.bareSpawnToQmp)} | — |`,
    `| ${label} | bare QMP quit → reaped (destroy floor) | ${p50p90(result.bareQuitToExit)} | — |`,
    `| ${label} | QemuDriver.start → running (in process) | ${p50p90(result.driverStart)} | ${ratios.driverStartP50VsFloor} |`,
    `| ${label} | QemuDriver.destroy → shutoff (in process) | ${p50p90(result.driverDestroy)} | ${ratios.driverDestroyP50VsFloor} |`,
    `| ${label} | agent over NATS start → running | ${p50p90(result.agentStart)} | ${ratios.agentStartP50VsFloor} |`,
    `| ${label} | agent over NATS destroy → shutoff | ${p50p90(result.agentDestroy)} | ${ratios.agentDestroyP50VsFloor} |`,
    `| ${label} | gateway HTTP start → running | ${p50p90(result.gatewayStart)} | **${ratios.gatewayStartP50VsFloor}** (target ≤ 1.5) |`,
    `| ${label} | gateway HTTP destroy → shutoff | ${p50p90(result.gatewayDestroy)} | **${ratios.gatewayDestroyP50VsFloor}** (target ≤ 3) |`,
  ];
}

function qemuMarkdown(result: QemuBenchResult): string {
  return [
    '## QEMU lifecycle: bare QEMU floor vs virtbus (driver in process, agent process over NATS, gateway HTTP → agent)',
    '',
    `Diskless domain (SeaBIOS only), 64 MiB, 1 vCPU; ${result.runs} runs per figure after one warm-up, the four paths interleaved run by run. Ratios are p50 / the floor's p50.`,
    '',
    '| accel | measurement | p50 ms | p90 ms | ratio to floor |',
    '|---|---|---|---|---|',
    ...accelRows('tcg (qemu)', result.tcg),
    ...accelRows('kvm', result.kvm),
    '',
  ].join('\n');
}

function monitoringMarkdown(result: MonitoringBenchResult): string {
  const ms = (s: LatencySummary) => `${round(s.p50Ms, 2)} | ${round(s.p90Ms, 2)}`;
  return [
    '## Monitoring: /metrics scrape latency and event publish → subscriber latency',
    '',
    `Agent /metrics with N running test-driver domains, scrape cache off (every scrape lists the domains and asks the driver),`,
    `${result.scrapes} sequential scrapes over keep-alive HTTP. Baseline: the same metrics HTTP server in its own process with a`,
    'static prom-client registry holding as many gauge series as the agent exposed.',
    '',
    '| domains | series | agent p50 ms | agent p90 ms | baseline p50 ms | baseline p90 ms | p50 ratio | p90 ratio |',
    '|---|---|---|---|---|---|---|---|',
    ...result.scrape.map((row) => `| ${row.domains} | ${row.series} | ${ms(row.agent)} | ${ms(row.baseline)} | ${row.p50VsBaseline} | ${row.p90VsBaseline} |`),
    '',
    `Events: ${result.events.count} \`domain.state\` calls (start/destroy) in sequence; latency from the agent's event timestamp`,
    '(set before the outbox write and fsync; ISO, 1 ms resolution) to a plain NATS subscriber of the node events. Baseline: raw',
    'NATS publish → subscribe between two connections of the bench process (sub-ms clock).',
    '',
    '| path | p50 ms | p90 ms | p99 ms |',
    '|---|---|---|---|',
    `| agent event → subscriber | ${ms(result.events.agent)} | ${round(result.events.agent.p99Ms, 2)} |`,
    `| raw publish → subscriber | ${ms(result.events.raw)} | ${round(result.events.raw.p99Ms, 2)} |`,
    '',
    `Agent event p50 / raw p50: ${result.events.p50VsRaw}`,
    '',
  ].join('\n');
}

function migrationMarkdown(result: MigrationBenchResult): string {
  const ms = (s: LatencySummary) => `${round(s.p50Ms, 1)} | ${round(s.p90Ms, 1)}`;
  return [
    '## Live migration: virtbus (two agents over NATS) vs a bare two-QEMU migration on loopback',
    '',
    `The ${result.memoryMiB} MiB TCG test guest (counting on its console), ${result.runs} migrations each, no disk, QEMU defaults`,
    '(128 MiB/s, 300 ms downtime limit). Wall: request → guest running on the destination (bare: destination spawn with',
    '-incoming, migrate, completed, cont; virtbus: domain.migrate → operation success, back and forth between nodes a and b).',
    'QEMU total-time and downtime come from query-migrate on the source.',
    '',
    '| measurement | bare p50 ms | bare p90 ms | virtbus p50 ms | virtbus p90 ms | p50 ratio |',
    '|---|---|---|---|---|---|',
    `| wall, request → running on destination | ${ms(result.bare.wall)} | ${ms(result.virtbus.wall)} | **${result.ratios.wallP50}** |`,
    `| QEMU total-time | ${ms(result.bare.qemuTotal)} | ${ms(result.virtbus.qemuTotal)} | ${result.ratios.qemuTotalP50} |`,
    `| QEMU downtime | ${ms(result.bare.downtime)} | ${ms(result.virtbus.downtime)} | **${result.ratios.downtimeP50}** |`,
    '',
  ].join('\n');
}

function storageMarkdown(result: StorageBenchResult): string {
  return [
    '## Volume upload/download through the gateway vs cp',
    '',
    `A ${result.fileMiB} MiB file of random bytes, ${result.runs} runs each (median MiB/s), interleaved run by run. Upload: HTTP PUT`,
    '→ gateway → NATS chunks (one acknowledged chunk at a time) → agent → pool file, fsync at commit. Download: HTTP GET back',
    'to a file. cp: the same file into the pool directory (no fsync).',
    '',
    '| path | MiB/s | / cp |',
    '|---|---|---|',
    `| cp | ${result.cpMiBs} | 1 |`,
    `| upload through the gateway | ${result.uploadMiBs} | **${result.uploadVsCp}** |`,
    `| download through the gateway | ${result.downloadMiBs} | **${result.downloadVsCp}** |`,
    '',
    `Downloaded sha256 equal to the source in every run: ${result.checksumsEqual}`,
    '',
  ].join('\n');
}

function fleetMarkdown(result: FleetBenchResult): string {
  const ms = (s: LatencySummary) => `${round(s.p50Ms, 2)} | ${round(s.p90Ms, 2)} | ${round(s.p99Ms, 2)}`;
  return [
    `## Node list at ${result.nodes} nodes: GET /v1/nodes (registry cache) vs raw NATS request/reply`,
    '',
    `${result.nodes} simulated test-driver nodes in one process (tools/sim: a \`virt-agent\` service with every endpoint and a`,
    `registry heartbeat each). ${result.requests} sequential calls per path, keep-alive HTTP. The fan-out row is the discovery the`,
    `gateway used before (\`$SRV.INFO\` to every agent, done after 200 ms of silence), ${result.fanOut.runs} runs, for reference.`,
    '',
    '| path | p50 ms | p90 ms | p99 ms | bytes per answer |',
    '|---|---|---|---|---|',
    `| raw NATS request/reply | ${ms(result.raw)} | ~30 |`,
    `| GET /v1/nodes (${result.gatewayNodes.listed} nodes, one page) | ${ms(result.gatewayNodes)} | ${result.gatewayNodes.bytes} |`,
    `| old fan-out: $SRV.INFO (${result.fanOut.replies} replies) | ${ms(result.fanOut)} | ${result.fanOut.bytes} |`,
    '',
    '| ratio | measured |',
    '|---|---|',
    `| GET /v1/nodes p50 / raw p50 | ${result.ratios.gatewayNodesP50VsRaw} |`,
    `| fan-out p50 / GET /v1/nodes p50 | ${result.ratios.fanOutP50VsGatewayNodes} |`,
    `| fan-out bytes / GET /v1/nodes bytes | ${result.ratios.fanOutBytesVsGatewayNodes} |`,
    '',
  ].join('\n');
}

function outageMarkdown(result: OutageBenchResult): string {
  return [
    `## Bus outage of ${result.outageSeconds} s: the gateway fails fast, then recovers`,
    '',
    'One nats-server, one agent, the gateway in its own process. The server stops for the whole outage (longer than nats.js\'',
    'default 10 reconnect attempts), then restarts on the same port and store. During the outage `GET /v1/nodes/bench` every',
    '250 ms; after it, the time until the gateway answers 200 vs until a plain nats.js client that reconnects forever gets an answer.',
    '',
    '| measurement | value |',
    '|---|---|',
    `| answers during the outage | ${Object.entries(result.duringOutage.codes).map(([code, count]) => `${count} × ${code}`).join(', ')} |`,
    `| answer latency during the outage p50 / p99 ms | ${round(result.duringOutage.p50Ms, 2)} / ${round(result.duringOutage.p99Ms, 2)} |`,
    `| restart → plain client answered (floor) ms | ${result.rawRecoveryMs} |`,
    `| restart → gateway 200 ms | ${result.gatewayRecoveryMs} |`,
    `| gateway recovery / floor | **${result.ratios.gatewayRecoveryVsRaw}** |`,
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

if (selected('fleet')) {
  const fleet = await benchFleet({ quick: values.quick });
  report.fleet = fleet;
  sections.push(fleetMarkdown(fleet));
  console.log(fleetMarkdown(fleet));
}

if (selected('outage')) {
  const outage = await benchOutage({ quick: values.quick });
  report.outage = outage;
  sections.push(outageMarkdown(outage));
  console.log(outageMarkdown(outage));
}

if (selected('monitoring')) {
  const monitoring = await benchMonitoring({ quick: values.quick });
  report.monitoring = monitoring;
  sections.push(monitoringMarkdown(monitoring));
  console.log(monitoringMarkdown(monitoring));
}

if (selected('qemu')) {
  const qemu = await benchQemu({ runs: values.quick ? 10 : 20 });
  report.qemu = qemu;
  sections.push(qemuMarkdown(qemu));
  console.log(qemuMarkdown(qemu));
}

if (selected('migration')) {
  const migration = await benchMigration({ quick: values.quick });
  report.migration = migration;
  sections.push(migrationMarkdown(migration));
  console.log(migrationMarkdown(migration));
}

if (selected('storage')) {
  const storage = await benchStorage({ quick: values.quick });
  report.storage = storage;
  sections.push(storageMarkdown(storage));
  console.log(storageMarkdown(storage));
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

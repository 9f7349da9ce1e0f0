import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '@virtbus/testing';
import { benchBus, type BusBenchResult } from './bus.js';
import { benchHostScale, type HostScaleBenchResult } from './hostscale.js';
import { benchCli, type CliBenchResult } from './cli.js';
import { benchLibvirt, type Compared, type LibvirtBenchResult } from './libvirt.js';
import { benchFleet, type FleetBenchResult } from './fleet.js';
import { benchFailover, benchOutage, type FailoverBenchResult, type OutageBenchResult } from './outage.js';
import { benchMonitoring, type MonitoringBenchResult } from './monitoring.js';
import { benchMigration, type MigrationBenchResult } from './migration.js';
import { benchQemu, type AccelBench, type QemuBenchResult } from './qemu.js';
import { round, type LatencySummary } from './stats.js';
import { benchStorage, type StorageBenchResult } from './storage.js';
import { createProfiler, profilesMarkdown } from './profile.js';
import { targetRows, targetsMarkdown } from './targets.js';

const { values } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, only: { type: 'string' }, 'hostscale-domains': { type: 'string' }, 'with-libvirt': { type: 'boolean', default: false }, 'no-profiles': { type: 'boolean', default: false } },
  strict: true,
});
const selected = (name: string) => !values.only || values.only.split(',').includes(name);

const fmt = (s: LatencySummary) => `${round(s.p50Ms)} | ${round(s.p99Ms)} | ${Math.round(s.throughputPerSec)}`;

function busMarkdown(result: BusBenchResult): string {
  const rows = (['raw', 'agent', 'gateway', 'httpForwarder'] as const).map((name) => `| ${name} | ${fmt(result[name].c1)} | ${fmt(result[name].c64)} |`);
  return [
    '## Request/reply: raw NATS vs agent vs gateway',
    '',
    `Read call: \`domain.get\` on the test driver (raw: a trivial responder). ${result.requests.inFlight1} requests at 1 in flight (the four paths interleaved in 5 rounds), ${result.requests.inFlight64} at 64.`,
    'httpForwarder: plain node:http forwarding the same bus call (no framework, auth, schemas or metrics), the floor for any HTTP front here.',
    '',
    '| path | p50 ms (1) | p99 ms (1) | req/s (1) | p50 ms (64) | p99 ms (64) | req/s (64) |',
    '|---|---|---|---|---|---|---|',
    ...rows,
    '',
    '| ratio | measured | target |',
    '|---|---|---|',
    `| agent p50 / raw p50 | ${result.ratios.agentP50VsRaw} | ≤ 1.5 |`,
    `| gateway p50 / raw p50 | **${result.ratios.gatewayP50VsRaw}** | ≤ 2 |`,
    `| bare HTTP forwarder p50 / raw p50 (the floor of any HTTP front here) | ${round(result.httpForwarder.c1.p50Ms / result.raw.c1.p50Ms, 2)} | — |`,
    `| gateway p50 / bare HTTP forwarder p50 | ${round(result.gateway.c1.p50Ms / result.httpForwarder.c1.p50Ms, 2)} | — |`,
    `| gateway req/s at 64 / raw | ${result.ratios.gatewayThroughput64VsRaw} | ≥ 0.6 |`,
    `| agent req/s at 64 / raw | ${result.ratios.agentThroughput64VsRaw} | — |`,
    `| plain HTTP forwarder req/s at 64 / raw | ${result.ratios.forwarderThroughput64VsRaw} | — |`,
    `| gateway req/s at 64 / plain HTTP forwarder (in-process generator above) | ${result.ratios.gatewayThroughput64VsForwarder} | — |`,
    '',
    `Throughput at 64 connections from ${result.http64.generator === 'wrk' ? "Debian's `wrk` (-t1 -c64, its own process)" : 'a node:http load generator in a worker thread (`/usr/bin/wrk` not installed)'},`,
    `gateway and forwarder alternated (${result.http64.gateway.seconds} s each in all). CPU µs per request: user + system time from /proc/<pid>/stat over the run / requests (10 ms ticks).`,
    '',
    '| path | req/s | requests | errors | front CPU µs/req | agent CPU µs/req |',
    '|---|---|---|---|---|---|',
    `| gateway | ${result.http64.gateway.requestsPerSec} | ${result.http64.gateway.requests} | ${result.http64.gateway.errors} | ${result.http64.gateway.cpuMicrosPerRequest.gateway} | ${result.http64.gateway.cpuMicrosPerRequest.agent} |`,
    `| bare node:http forwarder | ${result.http64.httpForwarder.requestsPerSec} | ${result.http64.httpForwarder.requests} | ${result.http64.httpForwarder.errors} | ${result.http64.httpForwarder.cpuMicrosPerRequest.forwarder} | ${result.http64.httpForwarder.cpuMicrosPerRequest.agent} |`,
    '',
    '| ratio | measured | target |',
    '|---|---|---|',
    `| gateway req/s at 64 / bare forwarder (${result.http64.generator}) | **${result.http64.gatewayVsForwarder}** | ≥ 0.9 |`,
    `| gateway CPU µs/req / forwarder CPU µs/req | ${round(result.http64.gateway.cpuMicrosPerRequest.gateway! / result.http64.httpForwarder.cpuMicrosPerRequest.forwarder!, 2)} | — |`,
    `| agent idle RSS (built) / bare \`node -e\` RSS | **${result.idleRss.ratio}** (${result.idleRss.agentKiB} / ${result.idleRss.bareNodeKiB} KiB) | ≤ 1.5 vs libvirtd (see the libvirt section) |`,
    '',
  ].join('\n');
}

const p50p90 = (s: LatencySummary, digits = 1) => `${round(s.p50Ms, digits)} | ${round(s.p90Ms, digits)}`;

function accelRows(label: string, result: AccelBench | { skipped: string }): string[] {
  if ('skipped' in result) return [`| ${label} | skipped: ${result.skipped} | | | |`];
  const { ratios } = result;
  return [
    `| ${label} | bare spawn → QMP query-status (start floor) | ${p50p90(result.bareSpawnToQmp)} | — |`,
    `| ${label} | bare QMP quit → reaped (destroy floor) | ${p50p90(result.bareQuitToExit)} | — |`,
    ...(result.sameArgsSpawnToQmp && result.sameArgsQuitToExit
      ? [
          `| ${label} | QEMU with the driver's command line: spawn → cont → QMP query-status | ${p50p90(result.sameArgsSpawnToQmp)} | ${round(result.sameArgsSpawnToQmp.p50Ms / result.bareSpawnToQmp.p50Ms, 2)} |`,
          `| ${label} | QEMU with the driver's command line: quit → reaped | ${p50p90(result.sameArgsQuitToExit)} | ${round(result.sameArgsQuitToExit.p50Ms / result.bareQuitToExit.p50Ms, 2)} |`,
        ]
      : []),
    `| ${label} | QemuDriver.start → running (in process) | ${p50p90(result.driverStart)} | ${ratios.driverStartP50VsFloor} |`,
    `| ${label} | QemuDriver.destroy → shutoff (in process) | ${p50p90(result.driverDestroy)} | ${ratios.driverDestroyP50VsFloor} |`,
    `| ${label} | agent over NATS start → running | ${p50p90(result.agentStart)} | ${ratios.agentStartP50VsFloor} |`,
    `| ${label} | agent over NATS destroy → shutoff | ${p50p90(result.agentDestroy)} | ${ratios.agentDestroyP50VsFloor} |`,
    `| ${label} | gateway HTTP start → running | ${p50p90(result.gatewayStart)} | **${ratios.gatewayStartP50VsFloor}** (target ≤ 1.2) |`,
    `| ${label} | gateway HTTP destroy → shutoff | ${p50p90(result.gatewayDestroy)} | **${ratios.gatewayDestroyP50VsFloor}** (target ≤ 2) |`,
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
  const ms = (s: LatencySummary) => p50p90(s, 2);
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
    `Events: ${result.events.count} \`domain.state\` calls (start/destroy) in sequence; latency to a plain NATS subscriber of the node`,
    "events from the agent's emit time (set before the event log's durable write) and from its publish (the Virt-Emitted-Us and",
    'Virt-Published-Us headers, µs). Baseline: raw NATS publish → subscribe between two connections of the bench process (sub-ms clock); floors: the same through JetStream, and one durable append. The paths are interleaved in 10 rounds.',
    '',
    '| path | p50 ms | p90 ms | p99 ms |',
    '|---|---|---|---|',
    `| agent event emit → subscriber | ${ms(result.events.agent)} | ${round(result.events.agent.p99Ms, 2)} |`,
    `| agent event publish → subscriber | ${ms(result.events.published)} | ${round(result.events.published.p99Ms, 2)} |`,
    `| raw publish → subscriber | ${ms(result.events.raw)} | ${round(result.events.raw.p99Ms, 2)} |`,
    `| floor: raw JetStream publish (events stream, acked) → subscriber | ${ms(result.events.rawJetStream)} | ${round(result.events.rawJetStream.p99Ms, 2)} |`,
    `| floor: one durable append (O_DSYNC write of an event line, same disk) | ${ms(result.events.durableAppend)} | ${round(result.events.durableAppend.p99Ms, 2)} |`,
    '',
    '| ratio | measured | target |',
    '|---|---|---|',
    `| event emit → subscriber p50 / raw p50 | **${result.events.p50VsRaw}** | ≤ 3 |`,
    `| event publish → subscriber p50 / raw p50 | ${result.events.publishedP50VsRaw} | — |`,
    `| event emit → subscriber p50 / (durable append p50 + raw JetStream → subscriber p50), what the agent adds to its two floors | ${result.events.p50VsFloors} | — |`,
    '',
  ].join('\n');
}

function migrationMarkdown(result: MigrationBenchResult): string {
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
    `| wall, request → running on destination | ${p50p90(result.bare.wall)} | ${p50p90(result.virtbus.wall)} | **${result.ratios.wallP50}** |`,
    `| QEMU total-time | ${p50p90(result.bare.qemuTotal)} | ${p50p90(result.virtbus.qemuTotal)} | ${result.ratios.qemuTotalP50} |`,
    `| QEMU downtime | ${p50p90(result.bare.downtime)} | ${p50p90(result.virtbus.downtime)} | **${result.ratios.downtimeP50}** |`,
    '',
  ].join('\n');
}

function storageMarkdown(result: StorageBenchResult): string {
  return [
    '## Volume upload/download through the gateway vs cp',
    '',
    `A ${result.fileMiB} MiB file of random bytes, ${result.runs} runs each (median MiB/s), interleaved run by run. Upload: HTTP PUT`,
    '→ gateway → NATS chunks (~1 MiB, up to 8 unacknowledged; agent writes overlapped) → agent → pool file, fsync at commit.',
    'Download: HTTP GET back to a file (up to 4 pulls in flight; the agent reads ahead of them). cp: the same file into the pool directory (no fsync).',
    '',
    '| path | MiB/s | / cp |',
    '|---|---|---|',
    `| cp | ${result.cpMiBs} | 1 |`,
    `| upload through the gateway | ${result.uploadMiBs} | **${result.uploadVsCp}** |`,
    `| download through the gateway | ${result.downloadMiBs} | **${result.downloadVsCp}** |`,
    '',
    `Downloaded sha256 equal to the source in every run: ${result.checksumsEqual}`,
    '',
    `Memory during one ${result.memory.transferMiB} MiB transfer each way (gateway in its own process), peak RSS growth over idle (target ≤ 64 MiB):`,
    '',
    '| process | upload MiB | download MiB |',
    '|---|---|---|',
    `| agent | ${result.memory.agentUploadMiB} | ${result.memory.agentDownloadMiB} |`,
    `| gateway | ${result.memory.gatewayUploadMiB} | ${result.memory.gatewayDownloadMiB} |`,
    '',
    `sha256 of the ${result.memory.transferMiB} MiB download equal to the source: ${result.memory.checksumEqual}`,
    '',
  ].join('\n');
}

const LIBVIRT_ROWS = [
  ['start (defined → running), p50 ms', 'startMs', 'time'],
  ['destroy (→ shut off, reaped), p50 ms', 'destroyMs', 'time'],
  ['define, 1,000 sequential, defines/s', 'definesPerSec', 'rate'],
  ['define, 100 sequential with 100 defined, defines/s', 'definesPerSecAt100', 'rate'],
  ['define, 100 sequential with N defined (N below), defines/s', 'definesPerSecAtScale', 'rate'],
  ['list all 1,001 domains with state, p50 ms', 'listMs', 'time'],
  ['lookup + info of one domain, p50 ms', 'lookupInfoMs', 'time'],
  ['volume upload 256 MiB into a dir pool, MiB/s', 'uploadMiBs', 'rate'],
  ['volume download 256 MiB, MiB/s', 'downloadMiBs', 'rate'],
] as const;

/** virtbus through its libvirt driver next to virsh on the same daemon. */
const LIBVIRT_DRIVER_ROWS = [
  ['start (defined → running), p50 ms', 'startMs', 'time'],
  ['destroy (→ shut off), p50 ms', 'destroyMs', 'time'],
  ['define, 100 sequential, defines/s (virtbus: recorded by the agent; libvirt gets the XML at the first start)', 'definesPerSec', 'rate'],
  ['list all domains with state, p50 ms (virtbus: the agent\'s table)', 'listMs', 'time'],
] as const;

/** A table row of a compared figure; ratios read "how many times libvirt": time rows libvirt / virtbus, rate rows virtbus / libvirt. */
function comparedRow(label: string, figure: Compared | undefined, kind: 'time' | 'rate'): string {
  if (!figure) return `| ${label} | not measured | not measured | — |`;
  const times = kind === 'time' ? round(figure.libvirt / figure.virtbus, 2) : round(figure.virtbus / figure.libvirt, 2);
  return `| ${label} | ${figure.virtbus} | ${figure.libvirt} | **${times}×** |`;
}

function libvirtMarkdown(result: LibvirtBenchResult | undefined): string {
  const row = ([label, key, kind]: (typeof LIBVIRT_ROWS)[number]) => comparedRow(label, result?.[key], kind);
  const driver = result?.viaLibvirtDriver;
  return [
    '## virtbus vs libvirt, side by side',
    '',
    result
      ? `libvirt ${result.libvirtVersion} (Debian; libvirtd + virtlogd in a private mount and network namespace with the bench's own dirs, QEMU as root, under a subreaper), timed with \`virsh -t\` (one connection per batch). virtbus: one agent (qemu driver) over NATS with VirtClient; volumes through the gateway HTTP. Same diskless 64 MiB TCG domain, same ${result.fileMiB} MiB file; ${result.runs} runs per latency (after a warm-up), medians.`
      : 'Run with `--with-libvirt` to measure (installs Debian\'s libvirt when missing).',
    '',
    '| measurement | virtbus | libvirt | virtbus faster by |',
    '|---|---|---|---|',
    ...LIBVIRT_ROWS.map(row),
    '',
    '| idle memory | virtbus agent | libvirtd | agent / libvirtd | target |',
    '|---|---|---|---|---|',
    result
      ? `| RSS KiB, ready, no domain, same moment (agent built, qemu driver) | ${result.idleRssKiB.virtbus} | ${result.idleRssKiB.libvirt} | **${round(result.idleRssKiB.ratio, 2)}×** | ≤ 1.5 |`
      : '| RSS KiB, ready, no domain | not measured | not measured | — | ≤ 1.5 |',
    '',
    result ? `N for the define probe at scale: ${result.scaleDomains} domains on each side (filled untimed between the probes). Before any timed define, both daemons were warmed alike: ${result.defineWarmup} scratch domains defined and undefined on each side.` : '',
    result ? `sha256 of every downloaded file (both sides) equal to the source: ${result.checksumsEqual}` : '',
    result
      ? `Raw NATS floor, same run: the same ${result.fileMiB} MiB in ~1 MiB requests between two connections through the same nats-server, 8 in flight, hashed by the responder: ${result.natsBulkMiBs} MiB/s (upload ${round(result.uploadMiBs.virtbus / result.natsBulkMiBs, 2)}×, download ${round(result.downloadMiBs.virtbus / result.natsBulkMiBs, 2)}× of it). The gateway runs in its own process (built code).`
      : '',
    '',
    '### virtbus via its libvirt driver, next to libvirt',
    '',
    driver
      ? `A second agent with \`--drivers libvirt --libvirt-uri\` on the same libvirtd (qemu:///system) over NATS; virsh runs the XML the driver renders for the same config (diskless 64 MiB TCG, serial console), another name. ${driver.runs} runs per latency after a warm-up, medians; ${driver.domains} defines.`
      : 'Run with `--with-libvirt` to measure.',
    '',
    '| measurement | virtbus (libvirt driver) | libvirt | virtbus faster by |',
    '|---|---|---|---|',
    ...LIBVIRT_DRIVER_ROWS.map(([label, key, kind]) => comparedRow(label, driver?.[key], kind)),
    '',
    ...(result ? volumeCpuMarkdown(result) : []),
  ].join('\n');
}

/** CPU seconds per GiB moved, by process, for each volume path and the raw NATS floor. */
function volumeCpuMarkdown(result: LibvirtBenchResult): string[] {
  const cpu = result.volumeCpuSecPerGiB;
  const names = ['gateway', 'agent', 'nats-server', 'libvirtd', 'bench'];
  const rows: [string, keyof typeof cpu, number][] = [
    ['upload through the gateway', 'upload', result.uploadMiBs.virtbus],
    ['download through the gateway', 'download', result.downloadMiBs.virtbus],
    ['raw NATS floor (both clients in the bench process)', 'natsFloor', result.natsBulkMiBs],
    ['virsh vol-upload (virsh itself not counted)', 'virshUpload', result.uploadMiBs.libvirt],
    ['virsh vol-download (virsh itself not counted)', 'virshDownload', result.downloadMiBs.libvirt],
  ];
  const cell = (figures: Record<string, number>, name: string) => (figures[name] === undefined ? '—' : String(figures[name]));
  return [
    '| volume path, CPU s per GiB | MiB/s | ' + names.join(' | ') + ' | sum |',
    '|---|---|' + names.map(() => '---|').join('') + '---|',
    ...rows.map(([label, key, rate]) => {
      const figures = cpu[key];
      return `| ${label} | ${rate} | ${names.map((name) => cell(figures, name)).join(' | ')} | ${round(Object.values(figures).reduce((a, b) => a + b, 0), 2)} |`;
    }),
    '',
    'CPU seconds per GiB are user + system from /proc/<pid>/stat over all runs; on 2 shared cores a path is bound by its sum.',
    '',
  ];
}

function hostScaleMarkdown(result: HostScaleBenchResult): string {
  const { events, define, firstPage, restart, rss } = result;
  return [
    '## Host scale: events under parallel state changes, define rate, restart time and memory with many domains',
    '',
    `Events: ${events.parallelDomains} test-driver domains flip start/destroy in parallel (one agent process, calls over NATS) for ${events.seconds} s;`,
    'a plain NATS subscriber counts the domain events it receives. Lag: event timestamp (set at emit, before the log write',
    'and fsync; 1 ms resolution) → delivery to the subscriber, which JetStream does as it stores the publish (≈ emit → ack).',
    `Floors in the same run: a bare JetStream publisher (256 in flight, msgIDs) and a bare append + fdatasync loop (one event line per fsync).`,
    '',
    '| figure | measured | baseline | ratio | target |',
    '|---|---|---|---|---|',
    `| events/s delivered (16 domains in parallel) | ${events.agentEventsPerSec} | bare JetStream ${events.bareJetStreamPerSec}/s | ${events.vsBareJetStream} | ≥ 2,000/s |`,
    `| events/s vs one fsync per event | ${events.agentEventsPerSec} | append+fsync ${events.bareAppendFsyncPerSec}/s | **${events.vsBareAppendFsync}** | — |`,
    `| publish lag p50 / p99 ms | ${events.lagP50Ms} / **${events.lagP99Ms}** | — | — | p99 ≤ 50 ms |`,
    `| define rate at 100 → at ${result.domains} domains (defines/s; median of 5 alternating probes of 100) | ${define.ratePerSecAt100} → ${define.ratePerSecAtN} | rate at 100 | **${define.ratio}** | ≥ 0.8 |`,
    `| first page of ${result.domains} domains (domain.list limit 100, agent over NATS), p50 ms of ${firstPage.calls} | ${firstPage.pageP50Ms} | raw NATS request/reply ${firstPage.rawP50Ms} ms | **${firstPage.ratio}** | ≤ 3 |`,
    `| agent start with ${result.domains} domains vs empty (ms) | ${restart.loadedMs} | empty ${restart.emptyMs} | **${restart.ratio}** | ≤ 2 |`,
    `| RSS per defined domain after defining, forced GC (bytes; V8 heap ${rss.definedHeapBytesPerDomain}) | **${rss.definedBytesPerDomain}** | empty agent ${rss.empty.rssKiB} KiB → ${rss.loaded.rssKiB} KiB | — | ≤ 5,120 |`,
    `| RSS per domain after a restart, forced GC (bytes; V8 heap ${rss.restartedHeapBytesPerDomain}) | **${rss.restartedBytesPerDomain}** | empty restart ${rss.emptyRestart.rssKiB} KiB → ${rss.afterRestart.rssKiB} KiB | — | ≤ 5,120 |`,
    `| RSS per defined domain without a forced GC (bytes, garbage included) | ${rss.definedBytesPerDomainNoGc} | — | — | — |`,
    '',
    'Agent start time is spawn → first node.info answer, polled every 20 ms (includes Node start-up, the same in both). Agents run with',
    '`--inspect=127.0.0.1:0`: the bench forces two full GCs over the inspector before each memory figure.',
    '',
  ].join('\n');
}

function cliMarkdown(result: CliBenchResult): string {
  const ms = (s: LatencySummary) => `${round(s.p50Ms, 1)} | ${round(s.p90Ms, 1)}`;
  const virsh =
    'notMeasured' in result.virshList
      ? `| \`virsh list --all\` | not measured: ${result.virshList.notMeasured} | | |`
      : `| \`virsh list --all\` (idle libvirtd, ${result.virshList.domains} defined domains) | ${ms(result.virshList)} | ${result.virshList.count} |`;
  return [
    '## CLI: cold `virtbus list` (installed bundle) vs `virsh list`',
    '',
    'Each run is a new process from a temporary directory, the commands interleaved run by run. virtbus: the wrapper installed',
    `by \`dist/install.mjs\` into a scratch root, \`list --all\` without \`--node\` (asks the gateway for the online node, then lists its`,
    `5 test-driver domains) against the installed gateway and an agent on a local nats-server. Baselines in the same run: \`node -e 0\`,`,
    'and `virsh list --all` against an idle libvirtd of the bench\'s own with as many defined domains (`--with-libvirt`).',
    `Load average when the timed runs began: ${result.loadAverage}.`,
    '',
    '| command | p50 ms | p90 ms | runs |',
    '|---|---|---|---|',
    `| \`node -e 0\` (floor) | ${ms(result.nodeFloor)} | ${result.nodeFloor.count} |`,
    `| \`virtbus --version\` (start-up, no network) | ${ms(result.virtbusVersion)} | ${result.virtbusVersion.count} |`,
    `| \`virtbus list --all\` (installed bundle) | ${ms(result.virtbusList)} | ${result.virtbusList.count} |`,
    `| its two HTTP calls from a warm in-process client | ${ms(result.listRequests)} | ${result.listRequests.count} |`,
    `| \`virtbus list --all\` from the sources through tsx (before the build) | ${ms(result.fromSources)} | ${result.fromSources.count} |`,
    virsh,
    '',
    '| ratio | measured | target |',
    '|---|---|---|',
    `| virtbus list p50, ms | ${round(result.virtbusList.p50Ms, 1)} | ≤ 150 |`,
    `| virtbus list p50 − node floor p50, ms | ${result.listOverFloorMs} | — |`,
    `| virtbus list p50 / node floor p50 | ${result.ratios.listP50VsNodeFloor} | — |`,
    `| virtbus list p50 / virsh list p50 | ${result.ratios.listP50VsVirsh ?? 'not measured'} | — |`,
    `| from sources p50 / installed p50 | ${result.ratios.sourcesP50VsList} | — |`,
    '',
    `Install size (du of the scratch root, agent + gateway + CLI): ${result.installKiB.total} KiB, of which ${result.installKiB.lib} KiB bundles, source maps, licences and the API docs' static files; the CLI alone ${result.installKiB.cli} KiB.`,
    '',
  ].join('\n');
}

function fleetMarkdown(result: FleetBenchResult): string {
  const ms = (s: LatencySummary) => `${round(s.p50Ms, 2)} | ${round(s.p90Ms, 2)} | ${round(s.p99Ms, 2)}`;
  return [
    `## Fleet at ${result.nodes} nodes × ${result.domainsPerNode} domains: GET /v1/nodes and GET /v1/domains vs raw NATS request/reply`,
    '',
    `${result.nodes} simulated test-driver nodes in one process (tools/sim: a \`virt-agent\` service with every endpoint, a registry`,
    `heartbeat and ${result.domainsPerNode} domains each). ${result.requests} sequential calls per path, keep-alive HTTP; a call's time ends with`,
    'its last byte and its check comes after (every node listed once; 100 domains, the rest counted, no stale node). The',
    'same-size rows are NATS request/reply answering as many bytes as the gateway. The fan-out row is the discovery the gateway',
    `used before (\`$SRV.INFO\` to every agent, done after 200 ms of silence), ${result.fanOut.runs} runs, for reference.`,
    '',
    '| path | p50 ms | p90 ms | p99 ms | bytes per answer |',
    '|---|---|---|---|---|',
    `| raw NATS request/reply | ${ms(result.raw)} | ~30 |`,
    `| raw NATS request/reply, node-list size | ${ms(result.rawNodesSize)} | ${result.rawNodesSize.bytes} |`,
    `| GET /v1/nodes (${result.gatewayNodes.listed} nodes, one page) | ${ms(result.gatewayNodes)} | ${result.gatewayNodes.bytes} |`,
    `| raw NATS request/reply, domain-page size | ${ms(result.rawDomainsSize)} | ${result.rawDomainsSize.bytes} |`,
    `| GET /v1/domains?limit=100 (of ${result.gatewayDomains.total}) | ${ms(result.gatewayDomains)} | ${result.gatewayDomains.bytes} |`,
    `| old fan-out: $SRV.INFO (${result.fanOut.replies} replies) | ${ms(result.fanOut)} | ${result.fanOut.bytes} |`,
    '',
    '| ratio | measured | target |',
    '|---|---|---|',
    `| GET /v1/nodes p50 / raw p50 | **${result.ratios.gatewayNodesP50VsRaw}** | ≤ 5 |`,
    `| GET /v1/nodes p50 / same-size raw p50 | ${result.ratios.gatewayNodesP50VsRawSameSize} | |`,
    `| GET /v1/domains?limit=100 p50 / raw p50 | **${result.ratios.gatewayDomainsP50VsRaw}** | ≤ 5 |`,
    `| GET /v1/domains?limit=100 p50 / same-size raw p50 | ${result.ratios.gatewayDomainsP50VsRawSameSize} | |`,
    `| fan-out p50 / GET /v1/nodes p50 | ${result.ratios.fanOutP50VsGatewayNodes} | |`,
    `| fan-out bytes / GET /v1/nodes bytes | ${result.ratios.fanOutBytesVsGatewayNodes} | |`,
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

function failoverMarkdown(result: FailoverBenchResult): string {
  return [
    '## Failover: kill -9 of a node\'s NATS server in a three-server cluster',
    '',
    'Three routed nats-servers (JetStream replicas 3), one agent with all three URLs, the gateway and a plain nats.js client on',
    'the two other servers. While the agent\'s events flow (suspend/resume every ~20 ms) its server is killed with SIGKILL; then',
    'the time until a call on the node answers through the gateway vs through the plain client (the floor: the agent\'s own',
    'move), each trying a new call every 20 ms from the kill on, and every sequence number of the node an SSE stream opened',
    'before the kill delivered.',
    '',
    '| measurement | value | target |',
    '|---|---|---|',
    `| node events over the run (of them after the kill) | ${result.events} (${result.eventsAfterKill}) | |`,
    `| kill → plain client answered by the node (floor) ms | ${result.rawFailoverMs} | |`,
    `| kill → gateway 200 for the node ms | ${result.gatewayFailoverMs} | |`,
    `| gateway failover / floor | **${result.ratios.gatewayFailoverVsRaw}** | |`,
    `| attempts (one per 20 ms) that failed only after ≥ 400 ms: gateway / plain | ${result.slowFailures.gateway} / ${result.slowFailures.raw} | |`,
    `| events missing on the open SSE stream | **${result.sseMissing}** | 0 |`,
    `| events repeated on the open SSE stream | ${result.sseRepeated} | 0 |`,
    `| events missing in the stream | ${result.storedMissing} | 0 |`,
    '',
  ].join('\n');
}

const report: Record<string, unknown> = { startedAt: new Date().toISOString(), node: process.version, quick: values.quick };
const sections: string[] = [`# virtbus benchmark — ${report.startedAt as string}`, ''];

/** A bench and the markdown sections its result reads as. */
const bench =
  <T>(run: () => Promise<T>, ...views: Array<(result: T) => string>) =>
  async () => {
    const result = await run();
    return { result, markdown: views.map((view) => view(result)) };
  };
const quick = values.quick;
// after each issue-18 row's measured phase, a short profiled phase of the same workload (--no-profiles: none)
const PROFILE_SECONDS = 2;
const SAMPLING_US = 500;
const profiling = createProfiler({ seconds: PROFILE_SECONDS, samplingIntervalUs: SAMPLING_US });
const profiler = values['no-profiles'] ? undefined : profiling;
const benches = {
  bus: bench(() => benchBus({ quick, profiler }), busMarkdown),
  cli: bench(() => benchCli({ quick, withLibvirt: values['with-libvirt'] }), cliMarkdown),
  fleet: bench(() => benchFleet({ quick }), fleetMarkdown),
  outage: bench(
    async () => {
      const failover = await benchFailover({ quick });
      return { ...(await benchOutage({ quick })), failover };
    },
    outageMarkdown,
    (outage) => failoverMarkdown(outage.failover),
  ),
  monitoring: bench(() => benchMonitoring({ quick, profiler }), monitoringMarkdown),
  qemu: bench(() => benchQemu({ runs: quick ? 10 : 20, profiler }), qemuMarkdown),
  migration: bench(() => benchMigration({ quick }), migrationMarkdown),
  storage: bench(() => benchStorage({ quick }), storageMarkdown),
  hostscale: bench(() => benchHostScale({ quick, domains: Number(values['hostscale-domains'] ?? (quick ? 2000 : 10_000)) }), hostScaleMarkdown),
};
for (const [name, run] of Object.entries(benches)) {
  if (!selected(name)) continue;
  const { result, markdown } = await run();
  report[name] = result;
  sections.push(...markdown);
  for (const text of markdown) console.log(text);
}

if (selected('libvirt')) {
  const libvirt = values['with-libvirt'] ? await benchLibvirt({ quick: values.quick, profiler }) : undefined;
  report.libvirt = libvirt ?? 'not measured (run with --with-libvirt)';
  sections.push(libvirtMarkdown(libvirt));
  console.log(libvirtMarkdown(libvirt));
}

if (profiler) {
  report.profiles = { seconds: PROFILE_SECONDS, samplingIntervalUs: SAMPLING_US, cpu: profiling.cpuProfiles, memory: profiling.memoryProfiles };
  sections.push(profilesMarkdown(profiling.cpuProfiles, profiling.memoryProfiles, PROFILE_SECONDS, SAMPLING_US));
  console.log(sections.at(-1));
}

// the summary goes first: every #18 target with its same-run reference
sections.splice(2, 0, targetsMarkdown(report));
report.targets = targetRows(report);

const dir = join(REPO_ROOT, 'bench-results');
await mkdir(dir, { recursive: true });
const stamp = (report.startedAt as string).replace(/[:.]/g, '-');
await writeFile(join(dir, `bench-${stamp}.json`), `${JSON.stringify(report, null, 2)}\n`);
await writeFile(join(dir, `bench-${stamp}.md`), sections.join('\n'));
await writeFile(join(dir, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
await writeFile(join(dir, 'latest.md'), sections.join('\n'));
console.log(`report: ${join(dir, `bench-${stamp}.md`)}`);
process.exit(0);

import type { BusBenchResult } from './bus.js';
import type { HostScaleBenchResult } from './hostscale.js';
import type { Compared, LibvirtBenchResult } from './libvirt.js';
import type { MonitoringBenchResult } from './monitoring.js';
import { memoryBrief, PROFILE_ROWS, profileBrief, profileDelta, type ProfileRow, type RowMemory, type RowProfile } from './profile.js';
import type { AccelBench, QemuBenchResult } from './qemu.js';
import { round } from './stats.js';
import type { StorageBenchResult } from './storage.js';

/**
 * One row of the issue-#18 summary: the figure, its same-run reference, the ratio, the target, where the rest goes when missed,
 * and what the CPU does per unit of it in this run's profile of the row (the report's Profiles section).
 */
export type TargetRow = { path: string; virtbus: string; reference: string; ratio: number | undefined; target: string; met: boolean | undefined; why: string; profile?: string };

const sum = (figures: Record<string, number> | undefined) => round(Object.values(figures ?? {}).reduce((a, b) => a + b, 0), 2);

/**
 * Where a volume transfer's time goes, from this run's figures only: CPU per GiB by process against libvirtd's, the rate the
 * host's cores could carry at that CPU cost, and the raw NATS floor (one broker hop, no HTTP, no disk) with its own CPU.
 */
export function transferWhy(lv: LibvirtBenchResult, direction: 'upload' | 'download'): string {
  const cpu = lv.volumeCpuSecPerGiB;
  const figures = cpu[direction];
  const total = sum(figures);
  const libvirtd = sum(cpu[direction === 'upload' ? 'virshUpload' : 'virshDownload']);
  const virsh = (direction === 'upload' ? lv.uploadMiBs : lv.downloadMiBs).libvirt;
  const parts = Object.entries(figures).sort(([, a], [, b]) => b - a);
  const floorBroker = cpu.natsFloor['nats-server'];
  const text = [
    `CPU s/GiB ${parts.map(([name, seconds]) => `${name} ${seconds}`).join(' + ')} = ${total} vs libvirtd ${libvirtd} (${round(total / libvirtd, 1)}×; most in the ${parts[0]?.[0] ?? '—'})`,
  ];
  if (lv.cores && total > 0) {
    const ceiling = round((lv.cores * 1024) / total, 0);
    text.push(`at that cost ${lv.cores} cores carry at most ${ceiling} MiB/s = ${round(ceiling / virsh, 2)}× virsh with nothing else running`);
  }
  text.push(
    `the raw NATS floor moves ${lv.natsBulkMiBs} MiB/s = ${round(lv.natsBulkMiBs / virsh, 2)}× virsh` +
      (floorBroker === undefined ? '' : `, nats-server alone ${floorBroker} s/GiB there (${round(floorBroker / libvirtd, 1)}× all of libvirtd's)`),
  );
  return text.join('; ');
}

/** Where a lifecycle call's time goes, from this run's figures: the floor, then what the driver, the agent and the gateway each add. */
function stepsWhy(tcg: AccelBench, verb: 'start' | 'destroy', driverStep: string, agentStep: string): string {
  const [floor, same, driver, agent, gateway] =
    verb === 'start' ? [tcg.bareSpawnToQmp, tcg.sameArgsSpawnToQmp, tcg.driverStart, tcg.agentStart, tcg.gatewayStart] : [tcg.bareQuitToExit, tcg.sameArgsQuitToExit, tcg.driverDestroy, tcg.agentDestroy, tcg.gatewayDestroy];
  const add = (from: { p50Ms: number }, to: { p50Ms: number }) => `${to.p50Ms >= from.p50Ms ? '+' : ''}${round(to.p50Ms - from.p50Ms, 1)} ms`;
  const qemu = same ? ` (QEMU alone with the driver's command line ${add(floor, same)}, gateway / that ${round(gateway.p50Ms / same.p50Ms, 2)})` : '';
  return `p50s of this run: floor ${round(floor.p50Ms, 1)} ms; QemuDriver in process (${driverStep}) ${add(floor, driver)}${qemu}; agent over NATS (${agentStep}, reply) ${add(driver, agent)}; gateway HTTP hop ${add(agent, gateway)}`;
}

/** Every target of issue #18 read back from this run's sections; a row whose section did not run says so. */
export function targetRows(r: Record<string, unknown>): TargetRow[] {
  const bus = r.bus as BusBenchResult | undefined;
  const qemu = r.qemu as QemuBenchResult | undefined;
  const monitoring = r.monitoring as MonitoringBenchResult | undefined;
  const storage = r.storage as StorageBenchResult | undefined;
  const host = r.hostscale as HostScaleBenchResult | undefined;
  const lv = typeof r.libvirt === 'object' ? (r.libvirt as LibvirtBenchResult) : undefined;
  const tcg = qemu && !('skipped' in qemu.tcg) ? qemu.tcg : undefined;
  const none = (path: string, target: string, section: string): TargetRow => ({ path, virtbus: 'not measured', reference: `run \`--only ${section}\``, ratio: undefined, target, met: undefined, why: '' });
  const at = (ratio: number, max: number) => ratio <= max;
  const profiles = r.profiles as { cpu: RowProfile[]; memory: RowMemory[] } | undefined;
  const rowProfile = (row: ProfileRow) => profiles?.cpu.find((p) => p.row === row);
  const cpuOf = (row: ProfileRow) => profileBrief(rowProfile(row)) || undefined;
  const rows: TargetRow[] = [];
  if (bus) {
    const forwarderP50 = round(bus.httpForwarder.c1.p50Ms / bus.raw.c1.p50Ms, 2);
    rows.push({
      path: 'API read call p50, 1 in flight (gateway)',
      virtbus: `${round(bus.gateway.c1.p50Ms, 3)} ms`,
      reference: `raw NATS request/reply ${round(bus.raw.c1.p50Ms, 3)} ms`,
      ratio: bus.ratios.gatewayP50VsRaw,
      target: '≤ 2',
      met: at(bus.ratios.gatewayP50VsRaw, 2),
      profile: [cpuOf(PROFILE_ROWS.apiP50), profileDelta(rowProfile(PROFILE_ROWS.apiP50), 'gateway', rowProfile(PROFILE_ROWS.apiP50Forwarder), 'forwarder')].filter(Boolean).join('; ') || undefined,
      why: `a bare node:http forwarder of the same bus call is already ${forwarderP50}× raw: the HTTP hop (parse, socket writes, a second event-loop turn) before any framework work`,
    });
    const gw = bus.http64.gateway.cpuMicrosPerRequest;
    const fw = bus.http64.httpForwarder.cpuMicrosPerRequest;
    rows.push({
      path: `API throughput, 64 connections (${bus.http64.generator})`,
      virtbus: `${bus.http64.gateway.requestsPerSec}/s; CPU µs/req gateway ${gw.gateway}, agent ${gw.agent}`,
      reference: `bare forwarder ${bus.http64.httpForwarder.requestsPerSec}/s; CPU µs/req ${fw.forwarder}, agent ${fw.agent}`,
      ratio: bus.http64.gatewayVsForwarder,
      target: '≥ 0.9',
      met: bus.http64.gatewayVsForwarder >= 0.9,
      profile: cpuOf(PROFILE_ROWS.apiThroughput) && [cpuOf(PROFILE_ROWS.apiThroughput), `the forwarder's: ${cpuOf(PROFILE_ROWS.apiForwarder) ?? 'not profiled'}`, profileDelta(rowProfile(PROFILE_ROWS.apiThroughput), 'gateway', rowProfile(PROFILE_ROWS.apiForwarder), 'forwarder')].filter(Boolean).join('; '),
      why: `gateway CPU per request ${round(gw.gateway! / fw.forwarder!, 2)}× the forwarder's (auth, validation, serializers, metrics, tracing); tools/bench/gateway-profile.ts prints it by function`,
    });
  } else rows.push(none('API read call p50 and throughput (gateway)', '≤ 2 / ≥ 0.9', 'bus'));
  if (tcg) {
    rows.push({
      path: 'destroy through the gateway (TCG)',
      virtbus: `${round(tcg.gatewayDestroy.p50Ms, 1)} ms`,
      reference: `bare QEMU quit → reaped ${round(tcg.bareQuitToExit.p50Ms, 1)} ms`,
      ratio: tcg.ratios.gatewayDestroyP50VsFloor,
      target: '≤ 2',
      met: at(tcg.ratios.gatewayDestroyP50VsFloor, 2),
      profile: cpuOf(PROFILE_ROWS.destroy),
      why: stepsWhy(tcg, 'destroy', 'QMP quit → reaped', 'the DESTROYED record, one O_DSYNC log append'),
    });
    rows.push({
      path: 'start through the gateway (TCG)',
      virtbus: `${round(tcg.gatewayStart.p50Ms, 1)} ms`,
      reference: `bare spawn → QMP ready ${round(tcg.bareSpawnToQmp.p50Ms, 1)} ms`,
      ratio: tcg.ratios.gatewayStartP50VsFloor,
      target: '≤ 1.2',
      met: at(tcg.ratios.gatewayStartP50VsFloor, 1.2),
      profile: cpuOf(PROFILE_ROWS.start),
      why: stepsWhy(tcg, 'start', 'spawn, QMP handshake, console, cont', 'the STARTED record, one O_DSYNC log append'),
    });
  } else rows.push(none('destroy / start through the gateway', '≤ 2 / ≤ 1.2', 'qemu'));
  if (lv) {
    const rate = (path: string, figure: Compared, target: number, why: string, profile?: ProfileRow): TargetRow => {
      const ratio = round(figure.virtbus / figure.libvirt, 2);
      return { path, virtbus: String(figure.virtbus), reference: `libvirt ${figure.libvirt}`, ratio, target: `≥ ${target}`, met: ratio >= target, why, profile: profile && cpuOf(profile) };
    };
    const defineWhy = 'agent CPU per define: the reply and the DEFINED event are two socket writes in different ticks, the domain file goes through the thread pool (open, write, close, rename) beside the O_DSYNC log append (tools/bench/define-profile.ts)';
    rows.push(rate('define rate, 100 with 100 defined (defines/s)', lv.definesPerSecAt100, 1, defineWhy, PROFILE_ROWS.define));
    rows.push(rate(`define rate, 100 with ${lv.scaleDomains} defined (defines/s)`, lv.definesPerSecAtScale, 1, defineWhy, PROFILE_ROWS.define));
    const list = lv.gatewayListMs;
    if (list) {
      const ratio = round(list.virtbus / list.libvirt, 2);
      rows.push({ path: 'list 1,000 domains, one page through the gateway (ms)', virtbus: String(list.virtbus), reference: `virsh list --all ${list.libvirt} ms`, ratio, target: '≤ 4', met: ratio <= 4, why: 'the page crosses the bus as JSON (agent encode, gateway parse and re-serialize) where libvirtd hands out names from memory' });
    }
    rows.push(rate(`volume upload ${lv.fileMiB} MiB (MiB/s), sha256 equal: ${lv.checksumsEqual}`, lv.uploadMiBs, 1.5, transferWhy(lv, 'upload'), PROFILE_ROWS.upload));
    rows.push(rate(`volume download ${lv.fileMiB} MiB (MiB/s)`, lv.downloadMiBs, 1.5, transferWhy(lv, 'download'), PROFILE_ROWS.download));
    const bare = lv.bareNodeRssKiB ?? bus?.idleRss.bareNodeKiB;
    rows.push({
      path: 'agent idle RSS, built (KiB)',
      virtbus: String(lv.idleRssKiB.virtbus),
      reference: `libvirtd ${lv.idleRssKiB.libvirt}`,
      ratio: round(lv.idleRssKiB.ratio, 2),
      target: '≤ 1.5',
      met: lv.idleRssKiB.ratio <= 1.5,
      profile: memoryBrief(profiles?.memory.find((m) => m.row === PROFILE_ROWS.idleRss)) || undefined,
      why: bare
        ? `a bare \`node -e\` process is ${bare} KiB = ${round(bare / lv.idleRssKiB.libvirt, 2)}× libvirtd before any agent code; the agent's own code, heap and the node builtins it loads add ${lv.idleRssKiB.virtbus - bare} KiB`
        : 'run with --only bus for the bare node process',
    });
  } else rows.push(none('define, list of 1,000, upload/download, idle RSS vs libvirt', 'see issue', 'libvirt --with-libvirt'));
  if (storage) {
    const m = storage.memory;
    const growth = Math.max(m.agentUploadMiB, m.agentDownloadMiB, m.gatewayUploadMiB, m.gatewayDownloadMiB);
    rows.push({ path: `RSS growth during a ${m.transferMiB} MiB transfer each way (MiB, agent / gateway)`, virtbus: `${m.agentUploadMiB}/${m.agentDownloadMiB} · ${m.gatewayUploadMiB}/${m.gatewayDownloadMiB}`, reference: 'idle RSS of each', ratio: undefined, target: '≤ 64 MiB', met: growth <= 64, why: '' });
  }
  if (monitoring) {
    const e = monitoring.events;
    const floors = round((e.durableAppend.p50Ms + e.rawJetStream.p50Ms) / e.raw.p50Ms, 1);
    rows.push({
      path: 'event emit → subscriber p50',
      virtbus: `${round(e.agent.p50Ms, 3)} ms`,
      reference: `raw publish → subscribe ${round(e.raw.p50Ms, 3)} ms`,
      ratio: e.p50VsRaw,
      target: '≤ 3',
      met: e.p50VsRaw <= 3,
      profile: cpuOf(PROFILE_ROWS.event),
      why: `its two floors alone, a durable append (${round(e.durableAppend.p50Ms, 3)} ms) then a JetStream publish → subscriber (${round(e.rawJetStream.p50Ms, 3)} ms), are ${floors}× raw: an event is on disk before it is published; the agent's emit → subscriber is ${e.p50VsFloors}× their sum, its publish → subscriber ${round(e.published.p50Ms, 3)} ms (${e.publishedP50VsRaw}× raw)`,
    });
  } else rows.push(none('event emit → subscriber p50', '≤ 3', 'monitoring'));
  if (host) {
    const bytes = host.rss.definedBytesPerDomain;
    rows.push({ path: `agent RSS per defined domain (${host.domains} domains, after GC)`, virtbus: `${bytes} B`, reference: '5 kB', ratio: round(bytes / 5000, 2), target: '≤ 5,000 B', met: bytes <= 5000, why: 'each domain keeps its config object, indexes and its event-log position' });
  } else rows.push(none('agent RSS per defined domain', '≤ 5 kB', 'hostscale'));
  return rows;
}

export function targetsMarkdown(r: Record<string, unknown>): string {
  const rows = targetRows(r);
  const mark = (met: boolean | undefined) => (met === undefined ? '—' : met ? '✔' : '✘');
  return [
    '## Issue #18: every target in one table (figures of this run)',
    '',
    '| path | virtbus | same-run reference | ratio | target | met | where the rest goes (profile) |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((row) => `| ${row.path} | ${row.virtbus} | ${row.reference} | ${row.ratio ?? '—'} | ${row.target} | ${mark(row.met)} | ${row.met === false ? [row.why, row.profile].filter(Boolean).join('; ') : ''} |`),
    '',
  ].join('\n');
}

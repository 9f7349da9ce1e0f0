import { describe, expect, it } from 'vitest';
import { CATEGORIES } from './profile-summary.js';
import { targetRows, targetsMarkdown } from './targets.js';

const latency = (p50Ms: number) => ({ p50Ms, p90Ms: p50Ms, p99Ms: p50Ms, throughputPerSec: 0 });
const monitoring = {
  events: { agent: latency(0.9), published: latency(0.25), raw: latency(0.1), rawJetStream: latency(0.2), durableAppend: latency(0.3), p50VsRaw: 9, publishedP50VsRaw: 2.5, p50VsFloors: 1.8 },
};
const libvirt = {
  scaleDomains: 10_000,
  definesPerSecAt100: { virtbus: 900, libvirt: 600, ratio: 1.5 },
  definesPerSecAtScale: { virtbus: 300, libvirt: 600, ratio: 0.5 },
  gatewayListMs: { virtbus: 10, libvirt: 5, ratio: 2 },
  fileMiB: 256,
  checksumsEqual: true,
  natsBulkMiBs: 200,
  uploadMiBs: { virtbus: 100, libvirt: 500, ratio: 0.2 },
  downloadMiBs: { virtbus: 100, libvirt: 50, ratio: 2 },
  volumeCpuSecPerGiB: { upload: { gateway: 2, agent: 3, 'nats-server': 2.5 }, download: { gateway: 1 }, virshUpload: { libvirtd: 1.2 }, virshDownload: { libvirtd: 1.9 }, natsFloor: { 'nats-server': 2.4, bench: 3 } },
  cores: 2,
  idleRssKiB: { virtbus: 60_000, libvirt: 30_000, ratio: 2 },
  bareNodeRssKiB: 40_000,
};

const tcg = {
  bareSpawnToQmp: latency(45),
  bareQuitToExit: latency(5),
  sameArgsSpawnToQmp: latency(46),
  sameArgsQuitToExit: latency(6),
  driverStart: latency(48),
  driverDestroy: latency(7),
  agentStart: latency(52),
  agentDestroy: latency(9.5),
  gatewayStart: latency(55),
  gatewayDestroy: latency(11),
  ratios: { gatewayStartP50VsFloor: 1.22, gatewayDestroyP50VsFloor: 2.2, agentStartP50VsFloor: 1.16, agentDestroyP50VsFloor: 1.9, driverStartP50VsFloor: 1.07, driverDestroyP50VsFloor: 1.4 },
};

describe('the issue-18 summary of a bench run', () => {
  it('explains a missed lifecycle target with the steps this run measured', () => {
    const rows = targetRows({ qemu: { runs: 10, tcg, kvm: { skipped: 'no kvm' } } });
    expect(rows.find((r) => r.path.startsWith('destroy'))).toMatchObject({ met: false, why: expect.stringContaining('floor 5 ms; QemuDriver in process (QMP quit → reaped) +2 ms') });
    expect(rows.find((r) => r.path.startsWith('destroy'))!.why).toContain('gateway HTTP hop +1.5 ms');
    expect(rows.find((r) => r.path.startsWith('destroy'))!.why).toContain("(QEMU alone with the driver's command line +1 ms, gateway / that 1.83)");
    expect(rows.find((r) => r.path.startsWith('start'))).toMatchObject({ met: false, why: expect.stringContaining('+4 ms') });
  });

  it('reads each target from its section, marks it met or missed, and says why where missed', () => {
    const rows = targetRows({ monitoring, libvirt });
    const row = (start: string) => rows.find((r) => r.path.startsWith(start))!;
    expect(row('event emit')).toMatchObject({ ratio: 9, met: false, why: expect.stringContaining('are 5× raw') });
    expect(row('event emit').why).toContain('1.8× their sum, its publish → subscriber 0.25 ms (2.5× raw)');
    expect(row('define rate, 100 with 100')).toMatchObject({ ratio: 1.5, met: true });
    expect(row('define rate, 100 with 10000')).toMatchObject({ ratio: 0.5, met: false });
    expect(row('list 1,000')).toMatchObject({ ratio: 2, met: true });
    expect(row('volume upload')).toMatchObject({ ratio: 0.2, met: false, why: expect.stringContaining('= 7.5 vs libvirtd 1.2') });
    expect(row('volume download')).toMatchObject({ ratio: 2, met: true });
    // the miss is explained by this run's figures: CPU by process, what the cores could carry at that cost, the raw floor
    expect(row('volume upload').why).toBe(
      'CPU s/GiB agent 3 + nats-server 2.5 + gateway 2 = 7.5 vs libvirtd 1.2 (6.3×; most in the agent); at that cost 2 cores carry at most 273 MiB/s = 0.55× virsh with nothing else running; the raw NATS floor moves 200 MiB/s = 0.4× virsh, nats-server alone 2.4 s/GiB there (2× all of libvirtd\'s)',
    );
    expect(row('agent idle RSS')).toMatchObject({ ratio: 2, met: false, why: expect.stringContaining('40000 KiB = 1.33× libvirtd before any agent code; the agent') });
    expect(row('agent idle RSS').why).toContain('add 20000 KiB');
    // sections that did not run are rows that say so, not missing rows
    expect(row('API read call')).toMatchObject({ virtbus: 'not measured', met: undefined });
    expect(row('agent RSS per defined domain')).toMatchObject({ virtbus: 'not measured' });
  });

  it('writes one markdown row per target, with the reason only on missed ones', () => {
    const text = targetsMarkdown({ monitoring, libvirt });
    const lines = text.split('\n').filter((line) => line.startsWith('| ') && !line.startsWith('| path'));
    expect(lines).toHaveLength(targetRows({ monitoring, libvirt }).length);
    expect(lines.find((line) => line.startsWith('| define rate, 100 with 100 '))).toMatch(/\| ✔ \| +\|$/);
    expect(lines.find((line) => line.startsWith('| event emit'))).toMatch(/\| ✘ \| its two floors/);
  });

  it("adds a missed row's same-run profile to its explanation, and leaves a met row's out", () => {
    const agent = (cpu: number) => ({ name: 'agent', cpu, mainThread: 100, samples: 50, ours: {}, top: [], profiledCpu: 150 });
    const categories = [
      { category: CATEGORIES.socketNats, perUnit: 40 },
      { category: CATEGORIES.ours, perUnit: 30 },
      { category: CATEGORIES.fs, perUnit: 20 },
      { category: CATEGORIES.gc, perUnit: 1 },
    ];
    const profiles = {
      cpu: [
        { row: 'event', per: 'state change', unit: 'request', units: 100, seconds: 2, processes: [{ ...agent(120), categories }] },
        { row: 'define', per: 'define', unit: 'request', units: 100, seconds: 2, processes: [{ ...agent(900), categories }] },
        { row: 'upload', error: 'inspector gone' },
      ],
      memory: [{ row: 'idle-rss', processes: [{ name: 'agent', kib: { rss: 70000, 'file-backed': 30000 } }] }],
    };
    const rows = targetRows({ monitoring, libvirt, profiles });
    const row = (start: string) => rows.find((r) => r.path.startsWith(start))!;
    expect(row('event emit').profile).toBe(
      `same-run profile (Profiles section), CPU µs/state change: agent 120 (${CATEGORIES.socketNats} 40, ${CATEGORIES.ours} 30, ${CATEGORIES.fs} 20)`,
    );
    expect(row('define rate, 100 with 10000').profile).toContain('agent 900 (');
    expect(row('volume upload').profile).toBe('profile failed: inspector gone');
    expect(row('agent idle RSS').profile).toBe('same-run breakdown (KiB): agent rss 70000, file-backed 30000');
    const lines = targetsMarkdown({ monitoring, libvirt, profiles }).split('\n');
    expect(lines.find((line) => line.startsWith('| event emit'))).toMatch(/\| ✘ \| its two floors.*; same-run profile \(Profiles section\), CPU µs\/state change: agent 120 .* \|$/);
    // met: no explanation, so no profile either
    expect(lines.find((line) => line.startsWith('| define rate, 100 with 100 '))).toMatch(/\| ✔ \| +\|$/);
  });

  it('tells where the gateway spends more CPU per request than the bare forwarder under the same load', () => {
    const latency64 = { p50Ms: 1, p90Ms: 1, p99Ms: 1, throughputPerSec: 1 };
    const paths = { c1: latency(0.5), c64: latency64 };
    const http = (name: string, requestsPerSec: number, cpu: number) => ({ requests: 1, seconds: 1, requestsPerSec, errors: 0, cpuMicrosPerRequest: { [name]: cpu, agent: 10 } });
    const bus = {
      raw: paths,
      agent: paths,
      gateway: paths,
      httpForwarder: paths,
      ratios: { gatewayP50VsRaw: 1 },
      http64: { generator: 'wrk', gateway: http('gateway', 800, 50), httpForwarder: http('forwarder', 1000, 40), gatewayVsForwarder: 0.8 },
    };
    const front = (name: string, cpu: number, categories: [string, number][]) => ({ name, cpu, mainThread: cpu, samples: 9, ours: {}, top: [], profiledCpu: cpu, categories: categories.map(([category, perUnit]) => ({ category, perUnit })) });
    const profiles = {
      cpu: [
        { row: 'api-throughput', per: 'GET', unit: 'request', units: 9, seconds: 2, processes: [front('gateway', 50, [[CATEGORIES.socketHttp, 15], [CATEGORIES.framework, 6], [CATEGORIES.telemetry, 2]])] },
        { row: 'api-throughput-forwarder', per: 'GET', unit: 'request', units: 9, seconds: 2, processes: [front('forwarder', 40, [[CATEGORIES.socketHttp, 16], [CATEGORIES.nats, 3]])] },
      ],
      memory: [],
    };
    const row = targetRows({ bus, profiles }).find((r) => r.path.startsWith('API throughput'))!;
    expect(row.met).toBe(false);
    expect(row.profile).toContain(`gateway − forwarder +10: ${CATEGORIES.framework} +6, ${CATEGORIES.nats} -3, ${CATEGORIES.telemetry} +2, ${CATEGORIES.socketHttp} -1`);
  });
});

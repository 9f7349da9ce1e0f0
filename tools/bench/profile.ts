import { readdir, readFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import type { ChildProcess } from 'node:child_process';
import { INSPECT_LATER_ARGS, openInspector, type InspectorSession } from './inspector.js';
import { bundleModuleStarts, CATEGORIES, moduleAtLine, summarizeProfile, type CpuProfile, type ProcessProfile } from './profile-summary.js';
import { round } from './stats.js';

/** The issue-18 rows a same-run profile explains (the targets table refers to them by these ids). */
export const PROFILE_ROWS = {
  apiP50: 'api-p50',
  apiP50Forwarder: 'api-p50-forwarder',
  apiThroughput: 'api-throughput',
  apiForwarder: 'api-throughput-forwarder',
  start: 'start',
  destroy: 'destroy',
  define: 'define',
  upload: 'upload',
  download: 'download',
  event: 'event',
  idleRss: 'idle-rss',
} as const;
export type ProfileRow = (typeof PROFILE_ROWS)[keyof typeof PROFILE_ROWS];

/** A process of a bench row: `output` (its stderr so far) for a node process the profiler can reach; without it, CPU time only. */
export interface ProfiledProcess {
  name: string;
  pid: number;
  output?: () => string;
}

/** What a profiled phase did for one row: units of work (requests, or GiB moved), and if the phase mixes rows, its time windows. */
export interface ProfiledWork {
  row: ProfileRow;
  /** What one unit is, for the report ("GET of one domain", "destroy"). */
  per: string;
  unit: 'request' | 'GiB';
  units: number;
  /** [from, to] in monotonic µs (monotonicMicros), the clock of the profile's samples. */
  windows?: [number, number][];
}

/** A row's profile: CPU amounts from an unprofiled run of the workload, their split from a profiled run right after it. */
export type RowProfile =
  | { row: ProfileRow; per: string; unit: 'request' | 'GiB'; units: number; seconds: number; loadAverage: number; samplingIntervalUs: number; processes: (ProcessProfile & { profiledCpu: number | undefined })[] }
  | { row: ProfileRow; error: string };

/** A memory figure source for the idle-RSS row: KiB by what they hold; other code may push its own probes (a finer breakdown). */
export type MemoryProbe = (process: ProfiledProcess) => Promise<Record<string, number>>;
export type RowMemory = { row: ProfileRow; processes: { name: string; kib: Record<string, number> }[] } | { row: ProfileRow; error: string };

/** What the bench sections call after a row's measured phase (never during it). */
export interface BenchProfiler {
  /** Seconds a profiled phase should last. */
  readonly seconds: number;
  /** Node options for a process the profiler may reach later: its inspector stays closed until the profiled phase. */
  readonly nodeArgs: readonly string[];
  /** Profiles `processes` while `workload` runs (it returns what it did for each of `rows`); a short call may sample finer. */
  cpu(rows: ProfileRow[], processes: ProfiledProcess[], workload: () => Promise<ProfiledWork[]>, options?: { samplingIntervalUs?: number }): Promise<void>;
  memory(row: ProfileRow, processes: ProfiledProcess[]): Promise<void>;
}

/** The clock of V8 profile sample times (CLOCK_MONOTONIC µs), for ProfiledWork windows. */
export const monotonicMicros = () => Number(process.hrtime.bigint() / 1000n);

/** Calls `once` back to back for about `seconds`; how many calls finished. */
export async function repeatFor(seconds: number, once: () => Promise<unknown>): Promise<number> {
  const end = Date.now() + seconds * 1000;
  let count = 0;
  while (Date.now() < end) {
    await once();
    count++;
  }
  return count;
}

/** Collects a child's stderr (where node prints its inspector URL) and passes the rest on to ours: a ProfiledProcess's `output`. */
export function stderrOf(child: ChildProcess): () => string {
  let text = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    const piece = chunk.toString();
    text = (text + piece).slice(-20_000);
    const rest = piece.split('\n').filter((line) => !/^(Debugger (listening|ending) on|For help, see: https:\/\/nodejs.org|Debugger attached|Waiting for the debugger)/.test(line));
    if (rest.some((line) => line !== '')) process.stderr.write(rest.join('\n'));
  });
  return () => text;
}

const KIB_FIELDS: [string, string][] = [
  ['VmRSS', 'rss'],
  ['RssAnon', 'anonymous (heaps, malloc, buffers)'],
  ['RssFile', 'file-backed (node binary, libraries, code)'],
  ['RssShmem', 'shared memory'],
];

/** The default memory probes: /proc/<pid>/status RSS split by kind, and for a node process V8's figures over its inspector (no forced GC). */
export const memoryProbes: MemoryProbe[] = [
  async ({ pid }) => {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return Object.fromEntries(KIB_FIELDS.map(([field, label]) => [label, Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN)]));
  },
  async ({ pid, output }): Promise<Record<string, number>> => {
    if (!output) return {};
    const session = await openInspector(output, { wake: pid });
    try {
      const evaluated = (await session.send('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as { result: { value: string } };
      const usage = JSON.parse(evaluated.result.value) as NodeJS.MemoryUsage;
      const kib = (bytes: number) => Math.round(bytes / 1024);
      return { 'V8 heap total': kib(usage.heapTotal), 'V8 heap used': kib(usage.heapUsed), 'external (buffers, native objects)': kib(usage.external), 'of it ArrayBuffers': kib(usage.arrayBuffers) };
    } finally {
      session.close();
    }
  },
];

/** On-CPU µs of each thread of a process, from /proc/<pid>/task/<tid>/schedstat (ns, where /proc/<pid>/stat counts 10 ms ticks). */
async function threadCpuMicros(pid: number): Promise<Map<number, number>> {
  const threads = new Map<number, number>();
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const text = await readFile(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').catch(() => undefined);
    if (text) threads.set(Number(tid), Number(text.split(' ')[0]) / 1000);
  }
  return threads;
}

/** CPU µs of the whole process and of its main thread between two threadCpuMicros reads (a thread gone by the second is left out). */
function cpuBetween(pid: number, from: Map<number, number>, to: Map<number, number>): { total: number; main: number } {
  let total = 0;
  for (const [tid, micros] of to) total += micros - (from.get(tid) ?? 0);
  return { total, main: (to.get(pid) ?? 0) - (from.get(pid) ?? 0) };
}

const bundleStarts = new Map<string, [number, string][]>();

async function loadBundles(profiles: CpuProfile[]): Promise<void> {
  const urls = new Set(profiles.flatMap((profile) => profile.nodes.map((node) => node.callFrame.url)).filter((url) => /^file:\/\/.*\/dist\/[^/]+\.(mjs|cjs|js)$/.test(url)));
  for (const url of urls) if (!bundleStarts.has(url)) bundleStarts.set(url, bundleModuleStarts(await readFile(new URL(url), 'utf8').catch(() => '')));
}

const bundleModuleAt = (url: string, line: number) => {
  const starts = bundleStarts.get(url);
  return starts ? moduleAtLine(starts, line) : undefined;
};

/** The profiler run.ts hands to the sections; it keeps every row's profile and memory breakdown for the report. */
export function createProfiler(options: { seconds: number; samplingIntervalUs?: number }): BenchProfiler & { cpuProfiles: RowProfile[]; memoryProfiles: RowMemory[] } {
  const cpuProfiles: RowProfile[] = [];
  const memoryProfiles: RowMemory[] = [];
  return {
    seconds: options.seconds,
    nodeArgs: INSPECT_LATER_ARGS,
    cpuProfiles,
    memoryProfiles,
    async cpu(rows, processes, workload, callOptions = {}) {
      const sessions: (InspectorSession | undefined)[] = [];
      const readCpu = () => Promise.all(processes.map((p) => threadCpuMicros(p.pid)));
      const spent = (from: Map<number, number>[], to: Map<number, number>[]) => from.map((before, index) => cpuBetween(processes[index]!.pid, before, to[index]!));
      try {
        // first the workload without the profiler (inspector still closed): the CPU amounts; then with it: where they go
        const plain0 = await readCpu();
        const began = Date.now();
        const plainWork = await workload();
        const seconds = (Date.now() - began) / 1000;
        const plain = spent(plain0, await readCpu());
        for (const p of processes) sessions.push(p.output ? await openInspector(p.output, { wake: p.pid }) : undefined);
        for (const session of sessions) {
          await session?.send('Profiler.enable');
          await session?.send('Profiler.setSamplingInterval', { interval: callOptions.samplingIntervalUs ?? options.samplingIntervalUs ?? 500 });
        }
        await Promise.all(sessions.map((session) => session?.send('Profiler.start')));
        const profiled0 = await readCpu();
        const profiledWork = await workload();
        const profiled = spent(profiled0, await readCpu());
        const profiles = await Promise.all(sessions.map(async (session) => ((await session?.send('Profiler.stop')) as { profile: CpuProfile } | undefined)?.profile));
        await loadBundles(profiles.filter((profile) => profile !== undefined));
        for (const item of plainWork) {
          const withProfiler = profiledWork.find((other) => other.row === item.row);
          const summaries = processes.map((p, index) => {
            const profile = profiles[index] ?? { nodes: [], startTime: 0, endTime: 0 };
            const summary = summarizeProfile(profile, { name: p.name, cpuMicros: plain[index]!, units: item.units, unit: item.unit, windows: withProfiler?.windows, bundleModuleAt });
            const perUnit = (micros: number, units: number) => round(item.unit === 'GiB' ? micros / 1e6 / units : micros / units, item.unit === 'GiB' ? 3 : 1);
            const share = withProfiler?.windows ? summary.cpu / Math.max(Number.EPSILON, perUnit(plain[index]!.total, item.units)) : 1;
            const profiledCpu = withProfiler ? perUnit(profiled[index]!.total * share, withProfiler.units) : undefined;
            // a process without a profile (not node) has its CPU time only
            return { ...(profiles[index] ? summary : { ...summary, mainThread: summary.cpu, categories: [], top: [] }), profiledCpu };
          });
          cpuProfiles.push({ row: item.row, per: item.per, unit: item.unit, units: round(item.units, 3), seconds: round(seconds, 2), loadAverage: round(loadavg()[0]!, 1), samplingIntervalUs: callOptions.samplingIntervalUs ?? options.samplingIntervalUs ?? 500, processes: summaries });
        }
      } catch (error) {
        for (const row of rows) cpuProfiles.push({ row, error: String(error) });
      } finally {
        for (const session of sessions) {
          await session?.send('Profiler.disable').catch(() => undefined);
          session?.close();
        }
      }
    },
    async memory(row, processes) {
      try {
        const figures = await Promise.all(processes.map(async (p) => ({ name: p.name, kib: Object.assign({}, ...(await Promise.all(memoryProbes.map((probe) => probe(p))))) as Record<string, number> })));
        memoryProfiles.push({ row, processes: figures });
      } catch (error) {
        memoryProfiles.push({ row, error: String(error) });
      }
    },
  };
}

const UNIT_LABEL = { request: 'µs', GiB: 's' } as const;

/** One line for the targets table: each process's CPU per unit and its three largest categories. */
export function profileBrief(profile: RowProfile | undefined): string {
  if (!profile) return '';
  if ('error' in profile) return `profile failed: ${profile.error}`;
  const unit = `${UNIT_LABEL[profile.unit]}/${profile.unit === 'GiB' ? 'GiB' : profile.per}`;
  const parts = profile.processes.map((p) => {
    const largest = p.categories.slice(0, 3).map((c) => `${c.category} ${c.perUnit}`);
    return `${p.name} ${p.cpu}${largest.length ? ` (${largest.join(', ')})` : ''}`;
  });
  return `same-run profile (Profiles section), CPU ${unit}: ${parts.join('; ')}`;
}

/** Where process `name` of profile `a` spends more CPU per unit than process `reference` of profile `b`, by category, largest first. */
export function profileDelta(a: RowProfile | undefined, name: string, b: RowProfile | undefined, reference: string, count = 4): string {
  if (!a || !b || 'error' in a || 'error' in b) return '';
  const left = a.processes.find((p) => p.name === name);
  const right = b.processes.find((p) => p.name === reference);
  if (!left || !right) return '';
  const of = (p: ProcessProfile, category: string) => p.categories.find((c) => c.category === category)?.perUnit ?? 0;
  const categories = [...new Set([...left.categories, ...right.categories].map((c) => c.category))];
  const deltas = categories.map((category) => [category, round(of(left, category) - of(right, category), 1)] as const).sort((x, y) => Math.abs(y[1]) - Math.abs(x[1]));
  const sign = (value: number) => `${value >= 0 ? '+' : ''}${value}`;
  return `${name} − ${reference} ${sign(round(left.cpu - right.cpu, 1))}: ${deltas
    .slice(0, count)
    .map(([category, delta]) => `${category} ${sign(delta)}`)
    .join(', ')}`;
}

/** One line for the targets table: a process's RSS split (the memory probes' figures). */
export function memoryBrief(memory: RowMemory | undefined): string {
  if (!memory) return '';
  if ('error' in memory) return `memory breakdown failed: ${memory.error}`;
  return `same-run breakdown (KiB): ${memory.processes.map((p) => `${p.name} ${Object.entries(p.kib).map(([what, kib]) => `${what} ${kib}`).join(', ')}`).join('; ')}`;
}

const ROW_TITLES: Record<ProfileRow, string> = {
  'api-p50': 'API read call, 1 in flight (gateway)',
  'api-p50-forwarder': 'API read call, 1 in flight (bare node:http forwarder, the reference)',
  'api-throughput': 'API throughput, 64 connections (gateway)',
  'api-throughput-forwarder': 'API throughput, 64 connections (bare node:http forwarder, the reference)',
  start: 'start through the gateway (TCG)',
  destroy: 'destroy through the gateway (TCG)',
  define: 'define (agent over NATS)',
  upload: 'volume upload through the gateway',
  download: 'volume download through the gateway',
  event: 'event emit → subscriber (agent)',
  'idle-rss': 'agent idle RSS',
};

/** The report's "Profiles" section: per row, CPU per unit by category and process, then the top functions. */
export function profilesMarkdown(cpu: RowProfile[], memory: RowMemory[], seconds: number, samplingIntervalUs: number): string {
  const lines = [
    '## Profiles: what the CPU does per request (same run, after each row\'s measured phase)',
    '',
    `After a row's measured phase its workload runs twice more on the same processes, ~${seconds} s each: first as it is, for the CPU amounts`,
    '(on-CPU time of every thread from /proc/<pid>/task/*/schedstat, ns; the main thread is task <pid>), then under the V8 CPU profiler over',
    `the inspector (closed until then, opened by SIGUSR1; one sample per ${samplingIntervalUs} µs unless the heading says otherwise), whose non-idle`,
    'samples share out the main thread\'s amount by category and function, idle left out; "other threads" is the rest of the process\'s amount as measured.',
    'A sample is wall time: on a loaded machine a call that wakes another thread or process (a socket write to nats-server, a thread-pool job)',
    'is often where the main thread loses its core, so such calls also get the time it waits for one (the heading gives the 1-minute load).',
    'Builtins such as JSON.parse/stringify and native bindings count in the JS function that calls them (V8 gives most no frame of',
    'their own); "other threads" holds the libuv pool (fs, crypto jobs) and V8\'s GC and compiler helpers.',
    '',
  ];
  for (const profile of cpu) {
    if ('error' in profile) {
      lines.push(`### ${ROW_TITLES[profile.row] ?? profile.row}: profile failed: ${profile.error}`, '');
      continue;
    }
    const unit = profile.unit === 'GiB' ? 'CPU s per GiB' : `CPU µs per ${profile.per}`;
    const amount = profile.unit === 'GiB' ? `${round(profile.units * 1024, 0)} MiB moved` : `${profile.units} × ${profile.per}`;
    const sampling = profile.samplingIntervalUs === samplingIntervalUs ? '' : `, one sample per ${profile.samplingIntervalUs} µs`;
    lines.push(`### ${ROW_TITLES[profile.row] ?? profile.row}: ${amount} in ${profile.seconds} s, ${unit} (load ${profile.loadAverage}${sampling})`, '');
    lines.push(`| ${unit} | ${profile.processes.map((p) => p.name).join(' | ')} |`, `|---|${profile.processes.map(() => '---|').join('')}`);
    lines.push(`| **all threads** | ${profile.processes.map((p) => `**${p.cpu}**`).join(' | ')} |`);
    lines.push(`| main thread | ${profile.processes.map((p) => p.mainThread).join(' | ')} |`);
    lines.push(`| all threads with the profiler on (its cost, not shared out) | ${profile.processes.map((p) => p.profiledCpu ?? '—').join(' | ')} |`);
    const order = Object.values(CATEGORIES).filter((category) => profile.processes.some((p) => p.categories.some((c) => c.category === category)));
    const total = (category: string) => profile.processes.reduce((sum, p) => sum + (p.categories.find((c) => c.category === category)?.perUnit ?? 0), 0);
    order.sort((a, b) => total(b) - total(a));
    for (const category of order) lines.push(`| ${category} | ${profile.processes.map((p) => p.categories.find((c) => c.category === category)?.perUnit ?? '—').join(' | ')} |`);
    lines.push(`| virtbus code by lib | ${profile.processes.map((p) => Object.entries(p.ours).slice(0, 4).map(([lib, value]) => `${lib} ${value}`).join(', ') || '—').join(' | ')} |`);
    lines.push(`| samples (non-idle) | ${profile.processes.map((p) => p.samples).join(' | ')} |`, '');
    for (const p of profile.processes) {
      if (p.top.length === 0) continue;
      lines.push(`Top functions, ${p.name} (self, ${UNIT_LABEL[profile.unit]}): ${p.top.map((f) => `${f.function}${f.module ? ` (${f.module})` : ''}${f.via ? ` ← ${f.via}` : ''} ${f.perUnit}`).join('; ')}`, '');
    }
  }
  for (const entry of memory) {
    if ('error' in entry) {
      lines.push(`### ${ROW_TITLES[entry.row] ?? entry.row}: memory breakdown failed: ${entry.error}`, '');
      continue;
    }
    const keys = [...new Set(entry.processes.flatMap((p) => Object.keys(p.kib)))];
    lines.push(`### ${ROW_TITLES[entry.row] ?? entry.row}: memory (KiB, read right after the measured figure)`, '');
    lines.push(`| KiB | ${entry.processes.map((p) => p.name).join(' | ')} |`, `|---|${entry.processes.map(() => '---|').join('')}`);
    for (const key of keys) lines.push(`| ${key} | ${entry.processes.map((p) => p.kib[key] ?? '—').join(' | ')} |`);
    lines.push('');
  }
  return lines.join('\n');
}

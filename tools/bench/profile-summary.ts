import { round } from './stats.js';

/** The V8 CPU profile the inspector's Profiler.stop returns (the fields read here). */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number; children?: number[] }[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** What the CPU of a process does per unit of work, in fixed categories (µs per request, or s per GiB moved). */
export const CATEGORIES = {
  http: 'HTTP parse/write (node:http)',
  framework: 'fastify, validation, serialization',
  telemetry: 'metrics and tracing (prom-client, OpenTelemetry)',
  nats: 'nats.js protocol',
  socketHttp: 'socket reads/writes for HTTP (node:net, streams)',
  socketNats: 'socket reads/writes for NATS (node:net, streams)',
  socket: 'other socket and stream work',
  fs: 'fs calls on the main thread',
  spawn: 'child processes (spawn: fork + exec on the main thread)',
  crypto: 'crypto (hashing)',
  json: 'JSON (where V8 shows it apart)',
  gc: 'GC (main-thread pauses)',
  ours: 'virtbus code',
  node: 'other node internals (events, ticks, timers, buffers)',
  packages: 'other packages',
  program: 'V8 and native, unattributed',
  threads: 'other threads (libuv pool, GC and compiler helpers)',
} as const;
export type Category = (typeof CATEGORIES)[keyof typeof CATEGORIES];

const FRAMEWORK = /^(fastify|@fastify\/.*|find-my-way|fast-json-stringify|fast-uri|fast-querystring|fast-decode-uri-component|ajv|ajv-formats|typebox|@sinclair\/typebox|avvio|light-my-request|pino|pino-std-serializers|sonic-boom|secure-json-parse|toad-cache|json-schema-ref-resolver|rfdc|proxy-addr|safe-regex2|ret|content-type|process-warning|abstract-logging)$/;
const TELEMETRY = /^(prom-client|@opentelemetry\/.*|tdigest|bintrees)$/;

/** Where a frame's code lives: `node:<module>`, a package name, `apps/<x>` / `libs/<x>` / `tools/<x>`, or '' (native). */
export function moduleOf(url: string, line: number, bundleModuleAt?: (url: string, line: number) => string | undefined): string {
  if (url === '') return '';
  if (url.startsWith('node:')) return url;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg) return pkg;
  const ours = /\/((?:apps|libs|tools)\/[^/]+)\//.exec(url)?.[1];
  if (ours) return ours;
  return bundleModuleAt?.(url, line) ?? url.replace(/^.*\//, '');
}

/** The category of a module (from moduleOf); '' (native code) has none and takes its caller's. */
export function categoryOfModule(module: string): Category | undefined {
  if (module === '') return undefined;
  if (module.startsWith('node:')) {
    const name = module.slice(5);
    if (/^(_http_|http$|https$|internal\/http)/.test(name)) return CATEGORIES.http;
    if (/^(net$|stream$|internal\/stream_base_commons|internal\/streams\/|internal\/net)/.test(name)) return CATEGORIES.socket;
    if (/^(fs$|fs\/|internal\/fs\/)/.test(name)) return CATEGORIES.fs;
    if (/^(crypto$|internal\/crypto\/)/.test(name)) return CATEGORIES.crypto;
    if (/^(child_process$|internal\/child_process)/.test(name)) return CATEGORIES.spawn;
    return CATEGORIES.node;
  }
  if (/^(apps|libs|tools)\//.test(module)) return CATEGORIES.ours;
  if (module.startsWith('@nats-io/')) return CATEGORIES.nats;
  if (FRAMEWORK.test(module)) return CATEGORIES.framework;
  if (TELEMETRY.test(module)) return CATEGORIES.telemetry;
  return CATEGORIES.packages;
}

/** esbuild writes `// <path>` before each module of a bundle: the package or lib that starts at each such line. */
export function bundleModuleStarts(source: string): [number, string][] {
  const starts: [number, string][] = [];
  source.split('\n').forEach((line, index) => {
    const match = /^\/\/ ((?:node_modules\/(?:@[^/]+\/)?[^/]+)|(?:apps|libs|tools)\/[^/]+)/.exec(line);
    if (match) starts.push([index, match[1]!.replace(/^node_modules\//, '')]);
  });
  return starts;
}

/** The module a 0-based line of a bundle belongs to, from bundleModuleStarts. */
export function moduleAtLine(starts: [number, string][], line: number): string | undefined {
  let low = 0;
  let high = starts.length - 1;
  if (high < 0 || starts[0]![0] > line) return undefined;
  while (low < high) {
    const mid = (low + high + 1) >> 1;
    if (starts[mid]![0] <= line) low = mid;
    else high = mid - 1;
  }
  return starts[low]![1];
}

export interface ProcessProfile {
  name: string;
  /** CPU per unit the process used over the profiled phase (user + system, /proc), all threads. */
  cpu: number;
  /** Of it, the main thread's (/proc/<pid>/task/<pid>), shared out by the profile's non-idle samples. */
  mainThread: number;
  samples: number;
  /** CPU per unit by category, largest first; idle samples excluded. */
  categories: { category: Category; perUnit: number }[];
  /** virtbus code by app/lib, per unit. */
  ours: Record<string, number>;
  /** The functions with the most self time, per unit. */
  /** `via`: the nearest caller outside node's own modules (for a builtin or node internal, the code that asked for it). */
  top: { function: string; module: string; via?: string; category: Category; perUnit: number }[];
}

export interface SummaryOptions {
  name: string;
  /** CPU µs over the profiled phase: the whole process and its main thread. */
  cpuMicros: { total: number; main: number };
  /** Requests done, or GiB moved. */
  units: number;
  unit: 'request' | 'GiB';
  /** Only samples taken inside these [from, to] monotonic-µs windows count, and the CPU in proportion (a phase mixing two rows). */
  windows?: [number, number][];
  bundleModuleAt?: (url: string, line: number) => string | undefined;
  topCount?: number;
}

const SPECIAL: Record<string, Category | 'idle'> = { '(garbage collector)': CATEGORIES.gc, '(program)': CATEGORIES.program, '(root)': CATEGORIES.program, '(idle)': 'idle' };

/** Shares a process's CPU time over its profile's categories and functions, per request (µs) or per GiB (s). */
export function summarizeProfile(profile: CpuProfile, options: SummaryOptions): ProcessProfile {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const hits = new Map<number, number>();
  if (options.windows && profile.samples && profile.timeDeltas) {
    let at = profile.startTime;
    profile.samples.forEach((id, index) => {
      at += profile.timeDeltas![index]!;
      if (options.windows!.some(([from, to]) => at >= from && at <= to)) hits.set(id, (hits.get(id) ?? 0) + 1);
    });
  } else for (const node of profile.nodes) if (node.hitCount) hits.set(node.id, node.hitCount);

  const protocolAbove = (id: number): Category | undefined => {
    for (let at = parent.get(id); at !== undefined; at = parent.get(at)) {
      const { url, lineNumber } = byId.get(at)!.callFrame;
      const category = categoryOfModule(moduleOf(url, lineNumber, options.bundleModuleAt));
      if (category === CATEGORIES.http || category === CATEGORIES.framework) return CATEGORIES.socketHttp;
      if (category === CATEGORIES.nats) return CATEGORIES.socketNats;
    }
    return undefined;
  };
  const placed = new Map<number, { category: Category | 'idle'; module: string }>();
  const place = (id: number): { category: Category | 'idle'; module: string } => {
    const known = placed.get(id);
    if (known) return known;
    const { callFrame } = byId.get(id)!;
    const module = moduleOf(callFrame.url, callFrame.lineNumber, options.bundleModuleAt);
    let category: Category | 'idle' | undefined = callFrame.url === '' ? SPECIAL[callFrame.functionName] : categoryOfModule(module);
    if (!category && /^(parse|stringify|JSONParse|JSONStringify)$/.test(callFrame.functionName)) category = CATEGORIES.json;
    // native code (a binding, a builtin) is counted with the JS that called it
    if (!category) category = parent.has(id) ? place(parent.get(id)!).category : CATEGORIES.program;
    // socket work is told apart by the protocol above it in the stack
    if (category === CATEGORIES.socket) category = protocolAbove(id) ?? category;
    const result = { category, module };
    placed.set(id, result);
    return result;
  };

  let busy = 0;
  let busyInPhase = 0;
  for (const node of profile.nodes) if (place(node.id).category !== 'idle') busyInPhase += node.hitCount ?? 0;
  for (const [id, count] of hits) if (place(id).category !== 'idle') busy += count;
  // with windows, the phase's CPU counts in proportion to the busy samples inside them
  const share = options.windows ? busy / Math.max(1, busyInPhase) : 1;
  const perUnit = (micros: number) => (options.unit === 'GiB' ? micros / 1e6 / options.units : micros / options.units);
  const digits = options.unit === 'GiB' ? 3 : 1;
  const main = options.cpuMicros.main * share;
  const others = Math.max(0, options.cpuMicros.total - options.cpuMicros.main) * share;
  const microsPerHit = busy > 0 ? main / busy : 0;

  const categories = new Map<Category, number>();
  const ours = new Map<string, number>();
  const functions = new Map<string, { function: string; module: string; via?: string; category: Category; micros: number }>();
  const caller = (id: number): string | undefined => {
    for (let at = parent.get(id); at !== undefined; at = parent.get(at)) {
      const { functionName, url, lineNumber } = byId.get(at)!.callFrame;
      const module = moduleOf(url, lineNumber, options.bundleModuleAt);
      if (module !== '' && !module.startsWith('node:')) return `${functionName || '(anonymous)'} (${module})`;
    }
    return undefined;
  };
  for (const [id, count] of hits) {
    const { category, module } = place(id);
    if (category === 'idle') continue;
    const micros = count * microsPerHit;
    categories.set(category, (categories.get(category) ?? 0) + micros);
    if (category === CATEGORIES.ours) ours.set(module, (ours.get(module) ?? 0) + micros);
    const { functionName, lineNumber } = byId.get(id)!.callFrame;
    const name = functionName || '(anonymous)';
    const own = module !== '' && !module.startsWith('node:');
    const via = own ? undefined : caller(id);
    const key = `${name} ${module}:${lineNumber} ${via ?? ''}`;
    const entry = functions.get(key) ?? { function: name, module: module || (name.startsWith('(') ? '' : '(native)'), ...(via ? { via } : {}), category, micros: 0 };
    entry.micros += micros;
    functions.set(key, entry);
  }
  if (busy === 0 && main > 0) categories.set(CATEGORIES.program, main);
  if (others > 0) categories.set(CATEGORIES.threads, others);
  return {
    name: options.name,
    cpu: round(perUnit(main + others), digits),
    mainThread: round(perUnit(main), digits),
    samples: busy,
    categories: [...categories]
      .sort((a, b) => b[1] - a[1])
      .map(([category, micros]) => ({ category, perUnit: round(perUnit(micros), digits) })),
    ours: Object.fromEntries([...ours].sort((a, b) => b[1] - a[1]).map(([module, micros]) => [module, round(perUnit(micros), digits)])),
    top: [...functions.values()]
      .sort((a, b) => b.micros - a.micros)
      .slice(0, options.topCount ?? 8)
      .map(({ micros, ...entry }) => ({ ...entry, perUnit: round(perUnit(micros), digits) })),
  };
}

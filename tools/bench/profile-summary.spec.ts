import { describe, expect, it } from 'vitest';
import { bundleModuleStarts, CATEGORIES, categoryOfModule, type CpuProfile, moduleAtLine, moduleOf, summarizeProfile } from './profile-summary.js';

const frame = (id: number, functionName: string, url: string, hitCount: number, children: number[] = [], lineNumber = 0) => ({ id, callFrame: { functionName, url, lineNumber }, hitCount, children });

// (root) → idle 50; → GC 10; → program 5; → parserOnIncoming (node:http) 20 → writev (native) 10; → route (fastify in the bundle) 30
// → handle (libs/drivers) 15; → publish (@nats-io) 10 → parse (native JSON) 5
const BUNDLE = 'file:///repo/dist/virtbus-gateway.mjs';
const profile: CpuProfile = {
  startTime: 1_000,
  endTime: 2_000,
  nodes: [
    frame(1, '(root)', '', 0, [2, 3, 4, 5, 7, 8, 9]),
    frame(2, '(idle)', '', 50),
    frame(3, '(garbage collector)', '', 10),
    frame(4, '(program)', '', 5),
    frame(5, 'parserOnIncoming', 'node:_http_server', 20, [6]),
    frame(6, 'writev', '', 10),
    frame(7, 'route', BUNDLE, 30, [], 120),
    frame(8, 'handle', 'file:///repo/libs/drivers/src/qemu/driver.ts', 15),
    frame(9, 'publish', 'file:///repo/node_modules/@nats-io/nats-core/lib/nats.js', 10, [10]),
    frame(10, 'parse', '', 5),
  ],
};
const bundle = ['// node_modules/@nats-io/nats-core/lib/nats.js', 'x', '// node_modules/fastify/lib/route.js', ...Array.from({ length: 200 }, () => 'code'), '// apps/gateway/src/main.ts', 'y'].join('\n');
const starts = bundleModuleStarts(bundle);
const bundleModuleAt = (url: string, line: number) => (url === BUNDLE ? moduleAtLine(starts, line) : undefined);

describe('a CPU profile summarized per request by category', () => {
  it('finds the package or lib of a frame, in a bundle by the line of its module', () => {
    expect(starts).toEqual([
      [0, '@nats-io/nats-core'],
      [2, 'fastify'],
      [203, 'apps/gateway'],
    ]);
    expect(moduleAtLine(starts, 1)).toBe('@nats-io/nats-core');
    expect(moduleAtLine(starts, 120)).toBe('fastify');
    expect(moduleAtLine(starts, 500)).toBe('apps/gateway');
    expect(moduleOf('file:///w/node_modules/@opentelemetry/api/build/x.js', 3)).toBe('@opentelemetry/api');
    expect(moduleOf('file:///w/apps/agent/src/main.ts', 3)).toBe('apps/agent');
    expect(categoryOfModule('node:internal/stream_base_commons')).toBe(CATEGORIES.socket);
    expect(categoryOfModule('node:_http_outgoing')).toBe(CATEGORIES.http);
    expect(categoryOfModule('node:internal/fs/promises')).toBe(CATEGORIES.fs);
    expect(categoryOfModule('fast-json-stringify')).toBe(CATEGORIES.framework);
    expect(categoryOfModule('typebox')).toBe(CATEGORIES.framework);
    expect(categoryOfModule('prom-client')).toBe(CATEGORIES.telemetry);
    expect(categoryOfModule('@nats-io/jetstream')).toBe(CATEGORIES.nats);
    expect(categoryOfModule('node:internal/process/task_queues')).toBe(CATEGORIES.node);
    expect(categoryOfModule('node:internal/child_process')).toBe(CATEGORIES.spawn);
    expect(categoryOfModule('')).toBeUndefined();
  });

  it('shares the main thread CPU over the busy samples, idle left out, native frames with their caller, other threads apart', () => {
    // 105 busy samples; main thread 10,500 µs = 100 µs a sample, over 10 requests 10 µs a sample per request
    const summary = summarizeProfile(profile, { name: 'gateway', cpuMicros: { total: 13_000, main: 10_500 }, units: 10, unit: 'request', bundleModuleAt });
    expect(summary).toMatchObject({ name: 'gateway', cpu: 1300, mainThread: 1050, samples: 105 });
    const by = Object.fromEntries(summary.categories.map((c) => [c.category, c.perUnit]));
    expect(by).toEqual({
      [CATEGORIES.http]: 300, // parserOnIncoming 20 + the writev it called 10
      [CATEGORIES.framework]: 300,
      [CATEGORIES.threads]: 250,
      [CATEGORIES.ours]: 150,
      [CATEGORIES.gc]: 100,
      [CATEGORIES.nats]: 100,
      [CATEGORIES.program]: 50,
      [CATEGORIES.json]: 50,
    });
    expect(summary.categories[0]!.perUnit).toBeGreaterThanOrEqual(summary.categories.at(-1)!.perUnit);
    expect(summary.ours).toEqual({ 'libs/drivers': 150 });
    expect(summary.top[0]).toEqual({ function: 'route', module: 'fastify', category: CATEGORIES.framework, perUnit: 300 });
    expect(summary.top.find((f) => f.function === 'writev')).toEqual({ function: 'writev', module: '(native)', category: CATEGORIES.http, perUnit: 100 });
    // native or node-internal frames name the nearest caller that is neither
    expect(summary.top.find((f) => f.function === 'parse')).toEqual({ function: 'parse', module: '(native)', via: 'publish (@nats-io/nats-core)', category: CATEGORIES.json, perUnit: 50 });
    expect(summary.top.find((f) => f.function === 'route')).not.toHaveProperty('via');
  });

  it('tells socket work apart by the protocol above it in the stack', () => {
    const sockets: CpuProfile = {
      startTime: 0,
      endTime: 1,
      nodes: [
        frame(1, '(root)', '', 0, [2, 5, 7]),
        frame(2, 'end', 'node:_http_outgoing', 0, [3]),
        frame(3, 'writeGeneric', 'node:internal/stream_base_commons', 4, [4]),
        frame(4, 'writev', '', 6),
        frame(5, 'flush', 'file:///w/node_modules/@nats-io/nats-core/lib/protocol.js', 0, [6]),
        frame(6, 'writeGeneric', 'node:internal/stream_base_commons', 2),
        frame(7, 'onStreamRead', 'node:internal/stream_base_commons', 3),
      ],
    };
    const summary = summarizeProfile(sockets, { name: 'gateway', cpuMicros: { total: 15, main: 15 }, units: 1, unit: 'request' });
    expect(summary.categories).toEqual([
      { category: CATEGORIES.socketHttp, perUnit: 10 },
      { category: CATEGORIES.socket, perUnit: 3 },
      { category: CATEGORIES.socketNats, perUnit: 2 },
    ]);
  });

  it('gives seconds per GiB for a transfer', () => {
    const summary = summarizeProfile(profile, { name: 'agent', cpuMicros: { total: 1_000_000, main: 500_000 }, units: 0.25, unit: 'GiB', topCount: 1 });
    expect(summary).toMatchObject({ cpu: 4, mainThread: 2 });
    expect(summary.categories.find((c) => c.category === CATEGORIES.threads)?.perUnit).toBe(2);
    expect(summary.top).toHaveLength(1);
  });

  it('counts only the samples inside the given windows, and that share of the CPU', () => {
    // samples at 1010 (route), 1020 (idle), 1030 (handle), 1040 (route): a window [1000, 1035] holds route + idle + handle
    const timed: CpuProfile = { ...profile, samples: [7, 2, 8, 7], timeDeltas: [10, 10, 10, 10], nodes: profile.nodes.map((n) => ({ ...n, hitCount: [7, 8, 2].includes(n.id) ? { 7: 2, 8: 1, 2: 1 }[n.id] : 0 })) };
    const summary = summarizeProfile(timed, { name: 'agent', cpuMicros: { total: 3_000, main: 3_000 }, units: 1, unit: 'request', windows: [[1_000, 1_035]] });
    // 2 of the phase's 3 busy samples are in the window: 2,000 µs, one sample each to route (in the bundle, unknown here) and handle
    expect(summary).toMatchObject({ cpu: 2000, samples: 2 });
    expect(summary.ours).toEqual({ 'libs/drivers': 1000 });
  });

  it('puts all main-thread CPU under unattributed when the profile caught no busy sample', () => {
    const idle: CpuProfile = { startTime: 0, endTime: 1, nodes: [frame(1, '(root)', '', 0, [2]), frame(2, '(idle)', '', 9)] };
    expect(summarizeProfile(idle, { name: 'x', cpuMicros: { total: 100, main: 100 }, units: 1, unit: 'request' }).categories).toEqual([{ category: CATEGORIES.program, perUnit: 100 }]);
  });
});

import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { VirtClient } from '@virtbus/client';
import { type AgentProcess, freePort, spawnAgent, tearDown, useNatsBus, useTempDir } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// A rejection nothing handles, raised inside the agent process on SIGUSR2 once it serves (the preload stands in for a bug).
const PRELOAD = `--import "data:text/javascript,process.on('SIGUSR2', () => void Promise.reject(new Error('planted rejection')))"`;

const bus = useNatsBus();
const work = useTempDir('virtbus-unhandled-');
let agent: AgentProcess;
let metricsPort: number;
let exitCode: number | null | undefined;

beforeAll(async () => {
  metricsPort = await freePort();
  agent = await spawnAgent({
    node: 'bug',
    natsUrl: bus.server.url,
    stateDir: join(work.path, 'bug'),
    extraArgs: ['--metrics-address', `127.0.0.1:${metricsPort}`],
    env: { NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} ${PRELOAD}` },
  });
  void agent.exited.then((code) => (exitCode = code));
});

afterAll(() => tearDown(agent));

describe('an unhandled rejection in the agent', () => {
  it('is logged and counted, and the agent keeps serving', async () => {
    const metrics = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(await metrics()).toMatch(/virtbus_agent_unhandled_rejections_total\{node="bug"\} 0/);
    process.kill(agent.pid, 'SIGUSR2');
    const deadline = Date.now() + 30_000;
    while (!/virtbus_agent_unhandled_rejections_total\{node="bug"\} 1/.test(await metrics()) && Date.now() < deadline && exitCode === undefined) await sleep(100);
    expect(exitCode, agent.output()).toBeUndefined();
    expect(await metrics()).toMatch(/virtbus_agent_unhandled_rejections_total\{node="bug"\} 1/);
    expect(agent.output()).toContain('unhandled promise rejection');
    expect(agent.output()).toContain('planted rejection');
    expect((await new VirtClient(bus.nc).call('bug', 'node.info', {})).node).toBe('bug');
  });
});

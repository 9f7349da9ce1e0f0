import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from '@nats-io/transport-node';
import { RECONNECT_FOREVER, VirtClient } from '@virtbus/client';
import { freePort, REPO_ROOT, spawnAgent, startNatsServer } from '@virtbus/testing';
import { round, summarize, type LatencySummary } from './stats.js';

export interface OutageBenchResult {
  outageSeconds: number;
  /** Latency of the gateway's answers while the bus is down, and their codes. */
  duringOutage: LatencySummary & { codes: Record<string, number> };
  /** From the server's restart to the first 200 from the gateway for a node call. */
  gatewayRecoveryMs: number;
  /** From the restart to the first answer over a plain nats.js connection that reconnects forever (the floor). */
  rawRecoveryMs: number;
  ratios: { gatewayRecoveryVsRaw: number };
}

/** A long bus outage (52 s, longer than nats.js' default 10 reconnect attempts): fail fast during it, recover after it. */
export async function benchOutage(options: { quick?: boolean } = {}): Promise<OutageBenchResult> {
  const outageMs = options.quick ? 30_000 : 52_000;
  const dir = await mkdtemp(join(tmpdir(), 'virtbus-bench-outage-'));
  let nats = await startNatsServer({ storeDir: join(dir, 'js') });
  const agent = await spawnAgent({ node: 'bench', natsUrl: nats.url, stateDir: join(dir, 'agent') });
  const port = await freePort();
  const gateway: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'apps/gateway/src/main.ts', '--nats', nats.url, '--port', String(port), '--rate-limit', '0'], {
    cwd: REPO_ROOT,
    env: { ...process.env, LOG_LEVEL: 'warn', NODE_ENV: 'production' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const nc = await connect({ servers: nats.url, ...RECONNECT_FOREVER });
  const client = new VirtClient(nc, 1000);
  const url = `http://127.0.0.1:${port}/v1/nodes/bench`;
  const status = async (): Promise<string> => {
    const response = await fetch(url).catch(() => undefined);
    if (!response) return 'refused';
    const body = (await response.json().catch(() => ({}))) as { code?: string };
    return response.status === 200 ? '200' : `${response.status} ${body.code ?? ''}`.trim();
  };
  try {
    for (let attempt = 0; (await status()) !== '200'; attempt++) {
      if (attempt > 300) throw new Error('gateway did not come up');
      await sleep(100);
    }
    await nats.stop();
    const latencies: number[] = [];
    const codes: Record<string, number> = {};
    const outageStart = performance.now();
    while (performance.now() - outageStart < outageMs) {
      const begin = performance.now();
      const code = await status();
      latencies.push(performance.now() - begin);
      codes[code] = (codes[code] ?? 0) + 1;
      await sleep(250);
    }
    const duringOutage = { ...summarize(latencies, performance.now() - outageStart), codes };
    nats = await startNatsServer({ port: nats.port, storeDir: join(dir, 'js') });
    const restarted = performance.now();
    let rawRecoveryMs: number | undefined;
    let gatewayRecoveryMs: number | undefined;
    while ((rawRecoveryMs === undefined || gatewayRecoveryMs === undefined) && performance.now() - restarted < 120_000) {
      if (rawRecoveryMs === undefined && (await client.call('bench', 'node.info', {}).then(() => true, () => false))) rawRecoveryMs = performance.now() - restarted;
      if (gatewayRecoveryMs === undefined && (await status()) === '200') gatewayRecoveryMs = performance.now() - restarted;
      await sleep(50);
    }
    if (rawRecoveryMs === undefined || gatewayRecoveryMs === undefined) throw new Error(`no recovery within 120 s (raw ${rawRecoveryMs}, gateway ${gatewayRecoveryMs})`);
    return {
      outageSeconds: outageMs / 1000,
      duringOutage,
      gatewayRecoveryMs: round(gatewayRecoveryMs, 0),
      rawRecoveryMs: round(rawRecoveryMs, 0),
      ratios: { gatewayRecoveryVsRaw: round(gatewayRecoveryMs / rawRecoveryMs, 2) },
    };
  } finally {
    gateway.kill('SIGTERM');
    await agent.stop();
    await nc.close();
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

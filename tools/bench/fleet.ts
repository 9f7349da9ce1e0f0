import { spawn, type ChildProcess } from 'node:child_process';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { fileURLToPath } from 'node:url';
import { Svcm } from '@nats-io/services';
import { connect } from '@nats-io/transport-node';
import { AGENT_SERVICE_NAME } from '@virtbus/api-contract';
import { freePort, REPO_ROOT, startNatsServer } from '@virtbus/testing';
import { load, round, summarize, type LatencySummary } from './stats.js';

export interface FleetBenchResult {
  nodes: number;
  requests: number;
  /** A trivial NATS request/reply (own process): the floor of any bus round trip. */
  raw: LatencySummary;
  /** GET /v1/nodes through the gateway, every node on one page (registry cache). */
  gatewayNodes: LatencySummary & { bytes: number; listed: number };
  /** The discovery the gateway did before: `$SRV.INFO virt-agent` to every agent, ending after 200 ms of silence. */
  fanOut: LatencySummary & { bytes: number; replies: number; runs: number };
  ratios: { gatewayNodesP50VsRaw: number; fanOutP50VsGatewayNodes: number; fanOutBytesVsGatewayNodes: number };
}

function waitForLine(child: ChildProcess, text: string, timeoutMs = 300_000): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no "${text}" within ${timeoutMs} ms`)), timeoutMs);
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`exited ${code} before "${text}"`)));
  });
}

/** GET /v1/nodes at N simulated nodes (tools/sim, one process) vs raw NATS request/reply, plus the old fan-out for reference. */
export async function benchFleet(options: { quick?: boolean; nodes?: number } = {}): Promise<FleetBenchResult> {
  const nodes = options.nodes ?? 1000;
  const requests = options.quick ? 100 : 500;
  const fanOutRuns = options.quick ? 3 : 10;
  const nats = await startNatsServer();
  const nc = await connect({ servers: nats.url });
  const children: ChildProcess[] = [];
  const child = (args: string[], env: Record<string, string> = {}) => {
    const spawned = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(spawned);
    return spawned;
  };
  try {
    const responder = child([fileURLToPath(new URL('./responder.ts', import.meta.url)), nats.url, 'bench.raw']);
    const sim = child([fileURLToPath(new URL('../sim/main.ts', import.meta.url)), '--nats', nats.url, '--nodes', String(nodes)]);
    await Promise.all([waitForLine(responder, 'ready'), waitForLine(sim, 'ready')]);
    const port = await freePort();
    child(['apps/gateway/src/main.ts', '--nats', nats.url, '--port', String(port), '--rate-limit', '0'], { LOG_LEVEL: 'warn', NODE_ENV: 'production' });
    const url = `http://127.0.0.1:${port}/v1/nodes`;
    const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
    let bytes = 0;
    let listed = 0;
    const getNodes = () =>
      new Promise<void>((resolve, reject) => {
        const request = httpRequest(url, { agent: httpAgent }, (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => {
            const body = Buffer.concat(chunks);
            if (response.statusCode !== 200) return reject(new Error(`HTTP ${response.statusCode}: ${body.toString()}`));
            bytes = body.length;
            listed = (JSON.parse(body.toString()) as { nodes: unknown[] }).nodes.length;
            resolve();
          });
        });
        request.on('error', reject);
        request.end();
      });
    const deadline = Date.now() + 120_000;
    for (;;) {
      const ok = await getNodes().then(
        () => listed === nodes,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`the gateway did not list ${nodes} nodes (last: ${listed})`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }

    const raw = () => nc.request('bench.raw', '{"id":"x"}', { timeout: 5000 });
    await load(raw, 1, 50);
    const rawResult = await load(raw, 1, requests);
    await load(getNodes, 1, 20);
    const gatewayResult = await load(getNodes, 1, requests);

    const fanOutLatencies: number[] = [];
    let fanOutBytes = 0;
    let replies = 0;
    const fanOutStart = performance.now();
    for (let run = 0; run < fanOutRuns; run++) {
      const begin = performance.now();
      const client = new Svcm(nc).client({ strategy: 'stall', maxWait: 10_000, stall: 200 });
      fanOutBytes = 0;
      replies = 0;
      for await (const info of await client.info(AGENT_SERVICE_NAME)) {
        replies++;
        fanOutBytes += JSON.stringify(info).length;
      }
      fanOutLatencies.push(performance.now() - begin);
    }
    const fanOut = summarize(fanOutLatencies, performance.now() - fanOutStart);
    return {
      nodes,
      requests,
      raw: rawResult,
      gatewayNodes: { ...gatewayResult, bytes, listed },
      fanOut: { ...fanOut, bytes: fanOutBytes, replies, runs: fanOutRuns },
      ratios: {
        gatewayNodesP50VsRaw: round(gatewayResult.p50Ms / rawResult.p50Ms, 1),
        fanOutP50VsGatewayNodes: round(fanOut.p50Ms / gatewayResult.p50Ms, 1),
        fanOutBytesVsGatewayNodes: round(fanOutBytes / bytes, 1),
      },
    };
  } finally {
    for (const spawned of children) spawned.kill('SIGTERM');
    await nc.close();
    await nats.stop();
  }
}

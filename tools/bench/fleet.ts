import { spawn, type ChildProcess } from 'node:child_process';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Svcm } from '@nats-io/services';
import { connect } from '@nats-io/transport-node';
import { AGENT_SERVICE_NAME, type FleetDomainList, type NodeList } from '@virtbus/api-contract';
import { freePort, REPO_ROOT, startNatsServer } from '@virtbus/testing';
import { round, summarize, type LatencySummary } from './stats.js';

export interface FleetBenchResult {
  nodes: number;
  domainsPerNode: number;
  requests: number;
  /** A trivial NATS request/reply (own process, ~30-byte answer): the floor of any bus round trip. */
  raw: LatencySummary;
  /** NATS request/reply whose answer is as large as the gateway's GET /v1/nodes answer: the floor for moving those bytes. */
  rawNodesSize: LatencySummary & { bytes: number };
  /** GET /v1/nodes through the gateway, every node on one page (registry cache); every answer checked to list every node. */
  gatewayNodes: LatencySummary & { bytes: number; listed: number };
  /** NATS request/reply whose answer is as large as the GET /v1/domains?limit=100 answer. */
  rawDomainsSize: LatencySummary & { bytes: number };
  /** GET /v1/domains?limit=100 (fleet index, first page); every answer checked: 100 domains, the rest counted, no stale node. */
  gatewayDomains: LatencySummary & { bytes: number; total: number };
  /** The discovery the gateway did before: `$SRV.INFO virt-agent` to every agent, ending after 200 ms of silence. */
  fanOut: LatencySummary & { bytes: number; replies: number; runs: number };
  ratios: {
    gatewayNodesP50VsRaw: number;
    gatewayNodesP50VsRawSameSize: number;
    gatewayDomainsP50VsRaw: number;
    gatewayDomainsP50VsRawSameSize: number;
    fanOutP50VsGatewayNodes: number;
    fanOutBytesVsGatewayNodes: number;
  };
}

/** Times `total` sequential calls; each returns its check, run after its time is taken (a failed check ends the bench). */
async function timedChecked(total: number, call: () => Promise<() => void>): Promise<LatencySummary> {
  const latencies: number[] = [];
  const wallStart = performance.now();
  for (let index = 0; index < total; index++) {
    const begin = performance.now();
    const check = await call();
    latencies.push(performance.now() - begin);
    check();
  }
  return summarize(latencies, performance.now() - wallStart);
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

/**
 * GET /v1/nodes and GET /v1/domains?limit=100 at N simulated nodes × M domains (tools/sim, one process) vs raw NATS
 * request/reply, small and of the same answer size; plus the old fan-out for reference.
 */
export async function benchFleet(options: { quick?: boolean; nodes?: number; domainsPerNode?: number } = {}): Promise<FleetBenchResult> {
  const nodes = options.nodes ?? 1000;
  const domainsPerNode = options.domainsPerNode ?? (options.quick ? 20 : 100);
  const requests = options.quick ? 100 : 500;
  const fanOutRuns = options.quick ? 3 : 10;
  const totalDomains = nodes * domainsPerNode;
  const nats = await startNatsServer();
  const nc = await connect({ servers: nats.url });
  const children: ChildProcess[] = [];
  const child = (args: string[], env: Record<string, string> = {}) => {
    const spawned = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(spawned);
    return spawned;
  };
  const responder = async (subject: string, bytes?: number) => {
    const spawned = child([fileURLToPath(new URL('./responder.ts', import.meta.url)), nats.url, subject, ...(bytes === undefined ? [] : [String(bytes)])]);
    await waitForLine(spawned, 'ready');
  };
  try {
    const sim = child([fileURLToPath(new URL('../sim/main.ts', import.meta.url)), '--nats', nats.url, '--nodes', String(nodes), '--domains', String(domainsPerNode)]);
    await Promise.all([responder('bench.raw'), waitForLine(sim, 'ready')]);
    const port = await freePort();
    // BENCH_CPU_PROF=<dir> profiles the gateway (a .cpuprofile written when it stops)
    const profile = process.env['BENCH_CPU_PROF'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['BENCH_CPU_PROF']}`] : [];
    child([...profile, 'apps/gateway/src/main.ts', '--nats', nats.url, '--port', String(port), '--rate-limit', '0'], { LOG_LEVEL: 'warn', NODE_ENV: 'production' });
    const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
    const get = (path: string) =>
      new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
        const request = httpRequest(`http://127.0.0.1:${port}${path}`, { agent: httpAgent }, (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks) }));
        });
        request.on('error', reject);
        request.end();
      });

    // every node listed, each once, on one page
    const checkNodes = (answer: { status: number; body: Buffer }): string | undefined => {
      if (answer.status !== 200) return `HTTP ${answer.status}: ${answer.body.toString().slice(0, 200)}`;
      const list = JSON.parse(answer.body.toString()) as NodeList;
      const names = new Set(list.nodes.map((node) => node.node));
      if (list.nodes.length !== nodes || names.size !== nodes || list.continue !== undefined) return `listed ${list.nodes.length} nodes (${names.size} distinct), not ${nodes}`;
      return undefined;
    };
    // the first 100 of every domain, the rest counted, from a fully synced index
    const checkDomains = (answer: { status: number; body: Buffer }): string | undefined => {
      if (answer.status !== 200) return `HTTP ${answer.status}: ${answer.body.toString().slice(0, 200)}`;
      const list = JSON.parse(answer.body.toString()) as FleetDomainList;
      if (list.stale?.length) return `${list.stale.length} nodes stale`;
      if (list.domains.length !== 100 || list.domains.length + (list.remaining ?? 0) !== totalDomains || list.continue === undefined)
        return `${list.domains.length} domains + ${list.remaining} remaining, not 100 of ${totalDomains}`;
      return undefined;
    };
    const until = async (path: string, check: (answer: { status: number; body: Buffer }) => string | undefined): Promise<Buffer> => {
      const deadline = Date.now() + 180_000;
      for (;;) {
        const answer = await get(path).catch((error: unknown) => ({ status: 0, body: Buffer.from(String(error)) }));
        const problem = check(answer);
        if (problem === undefined) return answer.body;
        if (Date.now() > deadline) throw new Error(`${path}: ${problem}`);
        await sleep(500);
      }
    };
    const nodesBody = await until('/v1/nodes', checkNodes);
    const domainsBody = await until('/v1/domains?limit=100', checkDomains);
    await Promise.all([responder('bench.raw.nodes', nodesBody.length), responder('bench.raw.domains', domainsBody.length)]);

    const rawCall = (subject: string, bytes: number) => async () => {
      const reply = await nc.request(subject, '{"id":"x"}', { timeout: 5000 });
      return () => {
        if (bytes > 0 && reply.data.length !== bytes) throw new Error(`${subject}: ${reply.data.length} bytes, not ${bytes}`);
      };
    };
    const gatewayCall = (path: string, check: (answer: { status: number; body: Buffer }) => string | undefined) => async () => {
      const answer = await get(path);
      return () => {
        const problem = check(answer);
        if (problem !== undefined) throw new Error(`${path}: ${problem}`);
      };
    };
    const measure = async (call: () => Promise<() => void>) => {
      await timedChecked(Math.min(50, requests), call);
      return timedChecked(requests, call);
    };
    const rawResult = await measure(rawCall('bench.raw', 0));
    const rawNodesSize = await measure(rawCall('bench.raw.nodes', nodesBody.length));
    const gatewayNodes = await measure(gatewayCall('/v1/nodes', checkNodes));
    const rawDomainsSize = await measure(rawCall('bench.raw.domains', domainsBody.length));
    const gatewayDomains = await measure(gatewayCall('/v1/domains?limit=100', checkDomains));

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
      domainsPerNode,
      requests,
      raw: rawResult,
      rawNodesSize: { ...rawNodesSize, bytes: nodesBody.length },
      gatewayNodes: { ...gatewayNodes, bytes: nodesBody.length, listed: nodes },
      rawDomainsSize: { ...rawDomainsSize, bytes: domainsBody.length },
      gatewayDomains: { ...gatewayDomains, bytes: domainsBody.length, total: totalDomains },
      fanOut: { ...fanOut, bytes: fanOutBytes, replies, runs: fanOutRuns },
      ratios: {
        gatewayNodesP50VsRaw: round(gatewayNodes.p50Ms / rawResult.p50Ms, 1),
        gatewayNodesP50VsRawSameSize: round(gatewayNodes.p50Ms / rawNodesSize.p50Ms, 1),
        gatewayDomainsP50VsRaw: round(gatewayDomains.p50Ms / rawResult.p50Ms, 1),
        gatewayDomainsP50VsRawSameSize: round(gatewayDomains.p50Ms / rawDomainsSize.p50Ms, 1),
        fanOutP50VsGatewayNodes: round(fanOut.p50Ms / gatewayNodes.p50Ms, 1),
        fanOutBytesVsGatewayNodes: round(fanOutBytes / nodesBody.length, 1),
      },
    };
  } finally {
    for (const spawned of children) spawned.kill('SIGTERM');
    await nc.close();
    await nats.stop();
  }
}

// By hand: event emit → subscriber and publish → subscriber p50 (the agent's µs headers) and agent CPU µs per event, built
// agents (AGENT_BUNDLES=a.mjs,b.mjs, test driver) alternated round by round with the raw JetStream publish → subscriber floor;
// EV_PARALLEL=n runs n domains' start/destroy loops at once (events then become durable while earlier publishes await acks).
import { constants } from 'node:fs';
import { mkdtemp, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { EventTimeHeaders, Subjects, type LifecycleEvent } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { builtBundle, startNatsServer } from '@virtbus/testing';
import { endBundleRun, spawnBundleAgent } from './bundle-agent.js';
import { median } from './stats.js';

/** User and system CPU µs of a process so far (/proc/<pid>/stat, 100 ticks/s). */
async function cpuSplit(pid: number): Promise<[number, number]> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return [Number(fields[11]) * 10_000, Number(fields[12]) * 10_000];
}

const root = await mkdtemp('/tmp/evab-');
const nats = await startNatsServer();
const nc = await connect({ servers: nats.url });
const subscriber = await connect({ servers: nats.url });
const client = new VirtClient(nc, 120_000);
const now = () => performance.timeOrigin + performance.now();
const bundles = process.env.AGENT_BUNDLES?.split(',') ?? [builtBundle('virtbus-agent')];
const parallel = Number(process.env.EV_PARALLEL ?? 1);
const perRound = Number(process.env.EV_PER_ROUND ?? 100);
const rounds = Number(process.env.ROUNDS ?? 6);
const agents = await Promise.all(
  bundles.map(async (bundle, i) => {
    const node = `ev${i}`;
    const nodeArgs = process.env.PROF === '1' ? ['--cpu-prof', '--cpu-prof-interval=100', `--cpu-prof-dir=${root}/prof${i}`] : [];
    const child = await spawnBundleAgent(client, { bundle, node, natsUrl: nats.url, stateDir: join(root, node), nodeArgs, drivers: 'test' });
    const agent = { node, bundle, child, emitted: [] as number[], published: [] as number[], emittedP50s: [] as number[], cpuUs: [] as number[], sysUs: [] as number[], record: false, domains: [] as string[] };
    subscriber.subscribe(Subjects.nodeEvents(node), {
      callback: (_error, msg) => {
        const at = now();
        if (!agent.record || msg.json<LifecycleEvent>().type === 'DEFINED') return;
        agent.emitted.push(at - Number(msg.headers?.get(EventTimeHeaders.emitted)) / 1000);
        agent.published.push(at - Number(msg.headers?.get(EventTimeHeaders.published)) / 1000);
      },
    });
    for (let d = 0; d < parallel; d++) agent.domains.push((await client.call(node, 'domain.define', { name: `ev${d}`, driver: 'test' })).uuid);
    return agent;
  }),
);
const js = jetstream(nc);
const jsSubject = Subjects.domainEvent('bench-floor', '00000000-0000-4000-8000-000000000000', 'STARTED');
const floor: number[] = [];
let recordFloor = false;
subscriber.subscribe(jsSubject, {
  callback: (_error, msg) => {
    if (recordFloor) floor.push(now() - Number(msg.string()));
  },
});
await subscriber.flush();
// the durable-append floor: one O_DSYNC append of an event-sized line, like the event log's group write
const floorLog = await open(join(root, 'floor.log'), constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC, 0o600);
const line = Buffer.alloc(400, 'x');
const appends: number[] = [];
for (let r = 0; r <= rounds; r++) {
  // the order alternates round by round: going first or second in a round is not the same on a shared machine
  for (const agent of r % 2 === 0 ? agents : [...agents].reverse()) {
    agent.record = r > 0;
    const from = agent.emitted.length;
    const [u0, s0] = await cpuSplit(agent.child.pid!);
    await Promise.all(
      agent.domains.map(async (uuid) => {
        for (let i = 0; i < perRound / parallel; i++) await client.call(agent.node, 'domain.state', { id: uuid, change: { action: i % 2 === 0 ? 'start' : 'destroy' } });
      }),
    );
    if (r > 0) {
      const [u1, s1] = await cpuSplit(agent.child.pid!);
      agent.cpuUs.push((u1 - u0 + s1 - s0) / perRound);
      agent.sysUs.push((s1 - s0) / perRound);
    }
    await subscriber.flush();
    agent.record = false;
    if (r > 0) agent.emittedP50s.push(median(agent.emitted.slice(from)));
  }
  recordFloor = r > 0;
  for (let i = 0; i < perRound / parallel; i++) {
    await Promise.all(Array.from({ length: parallel }, () => js.publish(jsSubject, String(now()))));
    await subscriber.flush();
  }
  recordFloor = false;
  for (let i = 0; i < perRound; i++) {
    const t0 = performance.now();
    await floorLog.write(line);
    if (r > 0) appends.push(performance.now() - t0);
  }
}
await floorLog.close();
const floorP50 = median(floor);
console.log(`raw JetStream publish → subscriber p50 ${floorP50.toFixed(3)} ms (${floor.length}); durable append p50 ${median(appends).toFixed(3)} ms`);
for (const agent of agents) {
  const e = median(agent.emitted);
  const p = median(agent.published);
  console.log(
    `${agent.bundle}: emit → subscriber p50 ${e.toFixed(3)} ms (${(e / floorP50).toFixed(2)}× floor), publish → subscriber ${p.toFixed(3)} ms (${(p / floorP50).toFixed(2)}×), emit → publish ${(e - p).toFixed(3)} ms; agent CPU ${median(agent.cpuUs).toFixed(0)} µs/event (system ${median(agent.sysUs).toFixed(0)}) [${agent.cpuUs.map((x) => x.toFixed(0)).join(' ')}] (${agent.emitted.length} events)`,
  );
}
// paired by round (the same minute of a shared machine's load): each agent's CPU per event over the first agent's
for (const agent of agents.slice(1)) {
  const cpu = median(agent.cpuUs.map((us, r) => us / agents[0]!.cpuUs[r]!));
  const latency = median(agent.emittedP50s.map((ms, r) => ms / agents[0]!.emittedP50s[r]!));
  console.log(`${agent.bundle} / ${agents[0]!.bundle}: emit → subscriber p50 ${latency.toFixed(2)}×, CPU per event ${cpu.toFixed(2)}× (medians of per-round ratios)`);
}
await subscriber.close();
await nc.close();
await endBundleRun(agents.map((agent) => agent.child), nats, root);

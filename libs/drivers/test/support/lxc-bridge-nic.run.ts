// Runs inside a network namespace (ip netns exec): one LXC container with a `bridge` NIC on vbtbr0, pinged from inside.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import pino from 'pino';
import type { DomainConfig } from '@virtbus/api-contract';
import { LxcDriver, type DomainRecord, type RunState } from '../../src/index.js';
import { testDomainConfig } from '@virtbus/testing';

interface LinkInfo {
  ifname: string;
  master?: string;
  address?: string;
}

const stateDir = process.env.VBT_STATE_DIR!;
const rootfs = process.env.VBT_ROOTFS!;
const bridge = process.env.VBT_BRIDGE!;
const mac = process.env.VBT_MAC!;

function emit(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function links(): LinkInfo[] {
  return JSON.parse(execFileSync('ip', ['-j', 'link'], { encoding: 'utf8' })) as LinkInfo[];
}

const config: DomainConfig = testDomainConfig({
  name: `vbt-nic-${randomUUID().slice(0, 8)}`,
  uuid: randomUUID(),
  driver: 'lxc',
  memory: 32,
  nics: [{ type: 'bridge', source: bridge, model: 'virtio', mac }],
  container: { rootfs: { path: rootfs }, hostname: 'vb-nic' },
});

const driver = new LxcDriver();
await driver.init({ node: 'netns-node', stateDir, logger: pino({ level: 'warn' }), observedState() {}, async saveRuntime() {} });
let domain: DomainRecord = { config, state: 'shutoff', reason: 'unknown' };
const apply = (change: RunState) => {
  domain = { config, state: change.state, reason: change.reason, ...(change.runtime ? { runtime: change.runtime } : {}) };
};
try {
  apply(await driver.start(domain, { paused: false }));
  emit({ event: 'started', uuid: config.uuid, initPid: domain.runtime?.initPid, monitorPid: domain.runtime?.monitorPid });
  const ping = await driver.exec!.exec(domain, {
    command: ['/bin/sh', '-c', '/sbin/ip addr add 10.213.0.2/24 dev eth0 && /sbin/ip link set eth0 up && /bin/ping -c 1 -W 2 10.213.0.1'],
    timeout: 20,
  });
  const inside = await driver.exec!.exec(domain, { command: ['/bin/cat', '/sys/class/net/eth0/address'] });
  const hostEnds = links().filter((link) => link.ifname.startsWith('vbl'));
  const stats = await driver.stats!.domainStats(domain, { deadlineMs: 5_000 });
  apply(await driver.destroy(domain));
  await driver.undefine(domain);
  const afterDestroy = links()
    .filter((link) => link.ifname.startsWith('vbl'))
    .map((link) => link.ifname);
  emit({
    event: 'result',
    ping: { exitCode: ping.exitCode, stdout: ping.stdout, stderr: ping.stderr, timedOut: ping.timedOut },
    macInside: inside.stdout.trim(),
    hostEnds: hostEnds.map((link) => ({ ifname: link.ifname, master: link.master ?? null })),
    net: stats.net ?? null,
    afterDestroy,
    state: domain.state,
  });
} catch (error) {
  emit({ event: 'error', message: error instanceof Error ? error.message : String(error) });
  if (domain.state !== 'shutoff') await driver.destroy(domain).catch(() => undefined);
  await driver.undefine(domain).catch(() => undefined);
  process.exitCode = 1;
} finally {
  await driver.close();
}

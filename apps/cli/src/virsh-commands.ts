import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Domain, DomainDisk, DomainStats } from '@virtbus/api-contract';
import { domainId, print, resolveNode, type CommandContext } from './commands.js';
import { keyValues, table } from './format.js';
import { VERSION } from './version.js';
import { UsageError } from './remotes.js';
import { operationUrl } from './http.js';

/** Usage lines of the verbs below (main.ts puts them in USAGE; help and completion read it). */
export const VIRSH_USAGE = `domstats DOMAIN                       host-side stats, one key=value line each (libvirt's keys)
domblklist DOMAIN                     disks of a domain: target and source (live ones when it runs)
domiflist DOMAIN                      NICs of a domain: type, source, model, MAC
dumpconfig DOMAIN                     the domain's full configuration as JSON (like virsh dumpxml)
domuuid DOMAIN                        the domain's UUID
domid DOMAIN                          the running domain's id (- when shut off)
uri                                   the gateway URL this CLI talks to
hostname                              the node's host name
version                               versions of this CLI, the node's agent and its drivers
capabilities                          the node's CPU, memory, NUMA cells and drivers as JSON
send-key DOMAIN KEY... [--holdtime MS]  press QEMU key names together (ctrl alt delete), like virsh send-key
screenshot DOMAIN FILE                the domain's screen as a PNG file (domains with graphics)
domcapabilities [--driver qemu|kvm] [MACHINE]  machine types, firmware, CPU models usable here, max vCPUs (JSON)
qemu-monitor-command DOMAIN COMMAND [JSON-ARGS] [--hmp]  qemu only, admin: one QMP (or HMP) command; taints the domain
lxc-enter-namespace DOMAIN COMMAND... lxc only, admin: run a command in the container's namespaces; taints the domain
`;

async function domain(ctx: CommandContext, id: string): Promise<Domain> {
  return ctx.http.call('domain.get', { node: await resolveNode(ctx), id });
}

const sourceText = (source: DomainDisk['source'] | undefined) => (source === undefined ? '-' : 'path' in source ? source.path : `${source.pool}/${source.volume}`);

/** virsh domblklist: the running domain's disks as attached now, else the configured ones. */
export async function domblklist(ctx: CommandContext, id: string): Promise<void> {
  const d = await domain(ctx, id);
  const disks = (d.liveDisks ?? d.config.disks).map((disk) => ({ target: disk.target ?? '-', source: sourceText(disk.source), device: disk.device ?? 'disk' }));
  print(ctx, { disks }, () => table(['Target', 'Source'], disks.map((disk) => [disk.target, disk.source])));
}

/** virsh domiflist: the configured NICs (the agent names no host-side device, so Interface is the NIC's index). */
export async function domiflist(ctx: CommandContext, id: string): Promise<void> {
  const d = await domain(ctx, id);
  const nics = d.config.nics.map((nic, index) => ({ interface: `net${index}`, type: nic.type, source: nic.source ?? '-', model: nic.model ?? 'virtio', mac: nic.mac ?? '-' }));
  print(ctx, { interfaces: nics }, () => table(['Interface', 'Type', 'Source', 'Model', 'MAC'], nics.map((nic) => [nic.interface, nic.type, nic.source, nic.model, nic.mac])));
}

/** The full persistent configuration, defaults filled in: what `define FILE.json` takes back (minus nothing). */
export async function dumpconfig(ctx: CommandContext, id: string): Promise<void> {
  ctx.output.out(JSON.stringify((await domain(ctx, id)).config, null, 2));
}

export async function domuuid(ctx: CommandContext, id: string): Promise<void> {
  const d = await domain(ctx, id);
  print(ctx, { uuid: d.uuid }, () => d.uuid);
}

export async function domid(ctx: CommandContext, id: string): Promise<void> {
  const d = await domain(ctx, id);
  print(ctx, { id: d.id ?? null }, () => domainId(d));
}

export function uri(ctx: CommandContext): void {
  const href = ctx.http.url('').href;
  print(ctx, { uri: href }, () => href);
}

export async function hostname(ctx: CommandContext): Promise<void> {
  const info = await ctx.http.call('node.info', { node: await resolveNode(ctx) });
  print(ctx, { node: info.node, hostname: info.hostname }, () => info.hostname);
}

export async function version(ctx: CommandContext): Promise<void> {
  const info = await ctx.http.call('node.info', { node: await resolveNode(ctx) });
  const drivers = info.drivers.map((driver) => `${driver.name}${driver.available ? '' : ' (unavailable)'}`).join(', ');
  print(ctx, { client: VERSION, node: info.node, agent: info.agentVersion, api: info.apiVersion, drivers: info.drivers }, () =>
    keyValues([
      ['Client', `virtbus ${VERSION}`],
      ['Agent', `virtbus-agent ${info.agentVersion} on ${info.node} (API ${info.apiVersion})`],
      ['Drivers', drivers],
    ]),
  );
}

export async function capabilities(ctx: CommandContext): Promise<void> {
  const { node, hostname: host, cpu, memory, numa, drivers } = await ctx.http.call('node.info', { node: await resolveNode(ctx) });
  ctx.output.out(JSON.stringify({ node, hostname: host, cpu, memory, numa, drivers }, null, 2));
}

/** virsh domstats: one `key=value` line per figure under `Domain: 'name'`, libvirt's key names (states by name, memory in KiB). */
export function statsLines(s: DomainStats): string {
  const kib = (bytes: number | undefined) => (bytes === undefined ? undefined : Math.round(bytes / 1024));
  const pairs: [string, string | number | boolean | undefined][] = [
    ['state.state', s.state],
    ['state.reason', s.reason],
    ['cpu.time', s.cpu?.timeNs],
    ['cpu.user', s.cpu?.userNs],
    ['cpu.system', s.cpu?.systemNs],
    ['balloon.maximum', kib(s.memory?.maximumBytes)],
    ['balloon.current', kib(s.memory?.currentBytes)],
    ['balloon.rss', kib(s.memory?.rssBytes)],
    ['balloon.usable', kib(s.memory?.usableBytes)],
    ['balloon.unused', kib(s.memory?.unusedBytes)],
    ['balloon.available', kib(s.memory?.availableBytes)],
    ['vcpu.current', s.vcpu?.current],
    ['vcpu.maximum', s.vcpu?.maximum],
    ...(s.vcpu?.list ?? []).flatMap((v): [string, string | number | undefined][] => [
      [`vcpu.${v.id}.state`, v.state],
      [`vcpu.${v.id}.time`, v.timeNs],
    ]),
    ['block.count', s.block?.length],
    ...(s.block ?? []).flatMap((b, i): [string, string | number | undefined][] => [
      [`block.${i}.name`, b.name],
      [`block.${i}.path`, b.path],
      [`block.${i}.rd.reqs`, b.readRequests],
      [`block.${i}.rd.bytes`, b.readBytes],
      [`block.${i}.rd.times`, b.readTimeNs],
      [`block.${i}.wr.reqs`, b.writeRequests],
      [`block.${i}.wr.bytes`, b.writeBytes],
      [`block.${i}.wr.times`, b.writeTimeNs],
      [`block.${i}.fl.reqs`, b.flushRequests],
      [`block.${i}.capacity`, b.capacityBytes],
      [`block.${i}.allocation`, b.allocationBytes],
    ]),
    ['net.count', s.net?.length],
    ...(s.net ?? []).flatMap((n, i): [string, string | number][] => [
      [`net.${i}.name`, n.name],
      [`net.${i}.rx.bytes`, n.rxBytes],
      [`net.${i}.rx.pkts`, n.rxPackets],
      [`net.${i}.rx.errs`, n.rxErrors],
      [`net.${i}.rx.drop`, n.rxDrops],
      [`net.${i}.tx.bytes`, n.txBytes],
      [`net.${i}.tx.pkts`, n.txPackets],
      [`net.${i}.tx.errs`, n.txErrors],
      [`net.${i}.tx.drop`, n.txDrops],
    ]),
    ['pids.current', s.pids?.current],
    ['pids.limit', s.pids?.limit],
    ['timed_out', s.timedOut],
  ];
  return [`Domain: '${s.name}'`, ...pairs.filter(([, value]) => value !== undefined).map(([key, value]) => `  ${key}=${String(value)}`)].join('\n');
}

/** Verbs of this file by name; undefined when `command` is none of them. */
export async function runVirshCommand(
  ctx: CommandContext,
  command: string,
  need: (what: string) => string,
  rest: readonly string[] = [],
  options: { holdTime?: number; driver?: string; hmp?: boolean } = {},
): Promise<number | undefined> {
  const verbs: Record<string, () => Promise<void> | void> = {
    domblklist: () => domblklist(ctx, need('domain')),
    domiflist: () => domiflist(ctx, need('domain')),
    dumpconfig: () => dumpconfig(ctx, need('domain')),
    domuuid: () => domuuid(ctx, need('domain')),
    domid: () => domid(ctx, need('domain')),
    domstats: async () => {
      const stats = await ctx.http.call('domain.stats', { node: await resolveNode(ctx), id: need('domain') });
      print(ctx, stats, () => statsLines(stats));
    },
    'send-key': async () => {
      const id = need('domain');
      const keys = rest.slice(1);
      if (keys.length === 0) throw new UsageError('send-key needs at least one KEY');
      await ctx.http.call('domain.sendKey', { node: await resolveNode(ctx), id }, { keys, ...(options.holdTime !== undefined ? { holdTime: options.holdTime } : {}) });
      print(ctx, { keys }, () => `Keys sent to ${id}: ${keys.join(' ')}`);
    },
    screenshot: async () => {
      const id = need('domain');
      const file = rest[1];
      if (!file) throw new UsageError('screenshot needs a FILE');
      const response = await ctx.http.stream(operationUrl('domain.screenshot', { node: await resolveNode(ctx), id }));
      await pipeline(response, createWriteStream(file, { mode: 0o600 }));
      print(ctx, { file }, () => `Screenshot of ${id} saved to ${file}`);
    },
    uri: () => uri(ctx),
    hostname: () => hostname(ctx),
    version: () => version(ctx),
    capabilities: () => capabilities(ctx),
    domcapabilities: async () => {
      const query = new URLSearchParams({ driver: options.driver ?? 'qemu', ...(rest[0] ? { machine: rest[0] } : {}) });
      ctx.output.out(JSON.stringify(await ctx.http.call('node.domcapabilities', { node: await resolveNode(ctx) }, undefined, query), null, 2));
    },
    'qemu-monitor-command': async () => {
      const id = need('domain');
      const [command, args] = [rest[1], rest[2]];
      if (!command) throw new UsageError('qemu-monitor-command needs a COMMAND');
      const monitor = { command, ...(args ? { arguments: JSON.parse(args) as Record<string, unknown> } : {}), ...(options.hmp ? { hmp: true } : {}) };
      const answer = await ctx.http.call('domain.qemu.monitor', { node: await resolveNode(ctx), id }, monitor);
      ctx.output.out(typeof answer.return === 'string' && !ctx.output.json ? answer.return : JSON.stringify(answer, null, 2));
    },
    'lxc-enter-namespace': async () => {
      const id = need('domain');
      const command = rest.slice(1);
      if (command.length === 0) throw new UsageError('lxc-enter-namespace needs a COMMAND');
      const result = await ctx.http.call('domain.lxc.enter', { node: await resolveNode(ctx), id }, { command });
      print(ctx, result, () => `${result.stdout}${result.stderr}`.replace(/\n$/, ''));
    },
  };
  const verb = Object.hasOwn(verbs, command) ? verbs[command] : undefined;
  if (!verb) return undefined;
  await verb();
  return 0;
}

import { readFile } from 'node:fs/promises';
import {
  MAX_PAGE_LIMIT,
  sseMessages,
  VirtError,
  type Domain,
  type DomainsPost,
  type DomainStatePut,
  type FleetDomain,
  type DomainEvent,
  type LifecycleEvent,
  type NodeList,
} from '@virtbus/api-contract';
import { bytes, keyValues, table } from './format.js';
import { operationUrl, type GatewayHttp } from './http.js';

export interface Output {
  out(text: string): void;
  json: boolean;
}

export interface CommandContext {
  http: GatewayHttp;
  output: Output;
  /** The node from --node/VIRTBUS_NODE, if given. */
  node?: string;
}


/** --node, or the only online node; more than one needs --node. */
export async function resolveNode(ctx: CommandContext): Promise<string> {
  if (ctx.node) return ctx.node;
  const { nodes } = await ctx.http.json<NodeList>('GET', '/v1/nodes');
  const online = nodes.filter((node) => node.online);
  if (online.length === 1) return online[0]!.node;
  throw new VirtError('INVALID_ARG', online.length === 0 ? 'no node is online' : `several nodes are online (${online.map((n) => n.node).join(', ')}): pass --node`);
}

/** Query parameters of a list: filters plus the bound on how many items to fetch in all. */
export interface ListOptions {
  /** Stop after this many items (all pages otherwise). */
  max?: number | undefined;
  query?: Record<string, string | undefined>;
  /** Sees each whole page (fields beside the items, like an interface list's transaction). */
  onPage?: (page: Record<string, unknown>) => void;
}

/** Every page of a paged list route (or the first `max` items), following `continue` tokens. */
export async function listAll<K extends string, T>(ctx: CommandContext, path: string, key: K, options: ListOptions = {}): Promise<T[]> {
  const items: T[] = [];
  let token: string | undefined;
  do {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(options.query ?? {})) if (value !== undefined && value !== '') params.set(name, value);
    const wanted = options.max === undefined ? MAX_PAGE_LIMIT : Math.min(MAX_PAGE_LIMIT, options.max - items.length);
    params.set('limit', String(wanted));
    if (token) params.set('continue', token);
    const page = await ctx.http.json<Record<K, T[]> & { continue?: string }>('GET', `${path}?${params.toString()}`);
    items.push(...page[key]);
    options.onPage?.(page);
    token = page.continue;
  } while (token && (options.max === undefined || items.length < options.max));
  return items;
}

/** The value as JSON under --json, else the text. */
export function print(ctx: CommandContext, value: unknown, text: () => string): void {
  ctx.output.out(ctx.output.json ? JSON.stringify(value, null, 2) : text());
}

/** Prints what a call answered (JSON under --json, else its text); resolves to the command's exit code 0. */
export async function printResult<T>(ctx: CommandContext, result: Promise<T>, text: (value: T) => string): Promise<0> {
  const value = await result;
  print(ctx, value, () => text(value));
  return 0;
}

/** Positional argument `index` of `command`, or INVALID_ARG naming `what` it needs. */
export function need(args: readonly string[], index: number, what: string, command: string): string {
  const value = args[index];
  if (!value) throw new VirtError('INVALID_ARG', `${command} needs ${what}`);
  return value;
}

export async function nodes(ctx: CommandContext): Promise<void> {
  const list = await ctx.http.json<NodeList>('GET', '/v1/nodes');
  print(ctx, list, () => table(['Node', 'State', 'Version'], list.nodes.map((n) => [n.node, n.online ? 'online' : 'offline', n.version])));
}

export async function nodeinfo(ctx: CommandContext): Promise<void> {
  const info = await ctx.http.call('node.info', { node: await resolveNode(ctx) });
  print(ctx, info, () =>
    keyValues([
      ['Node', info.node],
      ['Hostname', info.hostname],
      ['CPU model', info.cpu.model],
      ['CPU(s)', info.cpu.count],
      ['Topology', `${info.cpu.sockets} socket(s) × ${info.cpu.coresPerSocket} core(s) × ${info.cpu.threadsPerCore} thread(s)`],
      ['Memory', `${bytes(info.memory.totalBytes)} (free ${bytes(info.memory.freeBytes)})`],
      ['NUMA cells', info.numa.map((cell) => `${cell.id}: cpus ${cell.cpus.join(',')} free ${bytes(cell.memoryFreeBytes)}`).join('; ') || 'none'],
      ['Drivers', info.drivers.map((d) => `${d.name}${d.available ? '' : ' (unavailable)'}`).join(', ')],
      ['Agent', `${info.agentVersion} since ${info.startedAt}`],
    ]),
  );
}

export interface DomainListFilters {
  state?: string | undefined;
  selector?: string | undefined;
  prefix?: string | undefined;
  driver?: string | undefined;
}

/** virsh list: every page from the gateway (filters applied by the agent), running ones unless --all or --state. */
export async function list(ctx: CommandContext, all: boolean, filters: DomainListFilters = {}, max?: number): Promise<void> {
  const node = await resolveNode(ctx);
  const query = { state: filters.state, labelSelector: filters.selector, prefix: filters.prefix, driver: filters.driver };
  const domains = await listAll<'domains', Domain>(ctx, operationUrl('domain.list', { node }), 'domains', { query, max });
  const shown = all || filters.state ? domains : domains.filter((d) => d.state !== 'shutoff');
  print(ctx, { domains: shown }, () => table(['Id', 'Name', 'State', 'Driver', 'UUID'], shown.map((d) => [domainId(d), d.name, d.state, d.driver, d.uuid])));
}

/** list --fleet: every node's domains from the gateway's fleet index (GET /v1/domains), every page. */
export async function listFleet(ctx: CommandContext, all: boolean, filters: DomainListFilters = {}, max?: number): Promise<void> {
  const query = { state: filters.state, labelSelector: filters.selector, prefix: filters.prefix, driver: filters.driver };
  const stale = new Set<string>();
  const domains = await listAll<'domains', FleetDomain>(ctx, '/v1/domains', 'domains', {
    query,
    max,
    onPage: (page) => (page['stale'] as string[] | undefined)?.forEach((node) => stale.add(node)),
  });
  const shown = all || filters.state ? domains : domains.filter((d) => d.state !== 'shutoff');
  const staleNodes = [...stale].sort();
  print(ctx, { domains: shown, ...(staleNodes.length > 0 ? { stale: staleNodes } : {}) }, () => {
    const text = table(['Node', 'Name', 'State', 'Driver', 'UUID'], shown.map((d) => [d.node, d.name, d.state, d.driver, d.uuid]));
    return staleNodes.length > 0 ? `${text}\n(not current: ${staleNodes.join(', ')})` : text;
  });
}

/** virsh's Id column: the running domain's number, `-` when shut off. */
export const domainId = (d: Pick<Domain, 'id'>): string => (d.id === undefined ? '-' : String(d.id));

export async function dominfo(ctx: CommandContext, id: string): Promise<void> {
  const d = await ctx.http.call('domain.get', { node: await resolveNode(ctx), id });
  print(ctx, d, () =>
    keyValues([
      ['Id', domainId(d)],
      ['Name', d.name],
      ['UUID', d.uuid],
      ['OS Type', d.driver === 'lxc' ? 'exe' : 'hvm'],
      ['Node', d.node],
      ['Driver', d.driver],
      ['State', `${d.state} (${d.reason})`],
      ['Pending', d.persistPending ? 'this state is not yet on disk (state dir full); the agent retries' : undefined],
      ['CPU(s)', d.config.vcpus],
      ['Max memory', `${d.config.memory * 1024} KiB`],
      ['Persistent', d.persistent ? 'yes' : 'no'],
      ['Autostart', d.autostart ? 'enable' : 'disable'],
      ['Since', d.stateChangedAt],
    ]),
  );
}

/** A DomainsPost JSON file (the gateway validates it). */
export const readSpec = async (file: string): Promise<DomainsPost> => JSON.parse(await readFile(file, 'utf8')) as DomainsPost;

export async function define(ctx: CommandContext, spec: DomainsPost): Promise<void> {
  const d = await ctx.http.call('domain.define', { node: await resolveNode(ctx) }, spec);
  print(ctx, d, () => `Domain '${d.name}' defined (${d.uuid})`);
}

/** virsh create: a transient domain from a JSON file, started at once. */
export async function create(ctx: CommandContext, file: string, spec: DomainsPost, paused: boolean): Promise<void> {
  const body = { ...spec, ...(paused ? { paused } : {}) };
  const d = await ctx.http.call('domain.create', { node: await resolveNode(ctx) }, body);
  print(ctx, d, () => `Domain '${d.name}' created from ${file}: ${d.state} (transient)`);
}

/** Adopts libvirt's domains (driver libvirt): the named ones, or every one the node does not know yet. */
export async function importDomains(ctx: CommandContext, ids: string[]): Promise<void> {
  const result = await ctx.http.call('domain.import', { node: await resolveNode(ctx) }, ids.length ? { domains: ids } : {});
  print(ctx, result, () =>
    [...result.imported.map((d) => `Domain '${d.name}' imported (${d.uuid}): ${d.state}`), ...(result.remaining ? [`${result.remaining} more to import: run import again`] : [])].join('\n') || 'Nothing to import',
  );
}

export async function update(ctx: CommandContext, id: string, put: Record<string, unknown>): Promise<void> {
  const d = await ctx.http.call('domain.update', { node: await resolveNode(ctx), id }, put);
  print(ctx, d, () => `Domain '${d.name}' updated; changes apply at next start`);
}

export async function undefine(ctx: CommandContext, id: string): Promise<void> {
  const d = await ctx.http.call('domain.undefine', { node: await resolveNode(ctx), id });
  print(ctx, d, () => `Domain '${d.name}' has been undefined`);
}

const pastTense: Record<DomainStatePut['action'], string> = {
  start: 'started',
  shutdown: 'shut down',
  destroy: 'destroyed',
  reboot: 'rebooted',
  reset: 'reset',
  suspend: 'suspended',
  resume: 'resumed',
};

export async function changeState(ctx: CommandContext, id: string, change: DomainStatePut): Promise<void> {
  const d = await ctx.http.call('domain.state', { node: await resolveNode(ctx), id }, change);
  print(ctx, d, () => `Domain '${d.name}' ${pastTense[change.action]}: ${d.state} (${d.reason})`);
}

/** virsh domstate [--reason] */
export async function domstate(ctx: CommandContext, id: string, reason: boolean): Promise<void> {
  const s = await ctx.http.call('domain.state.get', { node: await resolveNode(ctx), id });
  print(ctx, s, () => (reason ? `${s.state} (${s.reason})` : s.state));
}

export async function exec(ctx: CommandContext, id: string, command: string[], timeout?: number): Promise<number> {
  const result = await ctx.http.call('domain.exec', { node: await resolveNode(ctx), id }, {
    command,
    ...(timeout ? { timeout } : {}),
  });
  if (ctx.output.json) ctx.output.out(JSON.stringify(result, null, 2));
  else {
    if (result.stdout) process.stdout.write(result.stdout);
    if (result.stderr) process.stderr.write(result.stderr);
  }
  return result.timedOut ? 124 : result.exitCode;
}

export interface EventOptions {
  node?: string;
  domain?: string;
  type?: string;
  /** domain (default), pool, network, snapshot, operation, graphics, domainevent or all. */
  kind?: string;
  since?: number;
  /** Stop after this many events (scripts and tests). */
  count?: number;
}

/** One line per event: domain lifecycle with detail and state, other families by kind, name and type. */
type BusEvent = Record<string, unknown> & { kind: string; node: string; timestamp: string };

function describeEvent(event: BusEvent): string {
  if (event.kind === 'domain.lifecycle') {
    const e = event as unknown as LifecycleEvent;
    return `${e.timestamp}  ${e.node}  ${e.name}  ${e.type}/${e.detail}  → ${e.state} (${e.reason})`;
  }
  if (event.kind === 'domain.event') {
    const e = event as unknown as DomainEvent;
    const details = Object.entries(e.details).map(([key, value]) => `${key}=${typeof value === 'object' ? JSON.stringify(value) : String(value)}`);
    return `${e.timestamp}  ${e.node}  ${e.name}  ${e.event}(${e.eventId})  ${details.join(' ')}`.trimEnd();
  }
  const operation = event['operation'] as { id?: string; kind?: string; state?: string; percent?: number } | undefined;
  if (operation) return `${event.timestamp}  ${event.node}  operation ${operation.id ?? '?'} ${operation.kind ?? ''} ${operation.state ?? ''} ${operation.percent ?? ''}%`.replace(/ +/g, ' ');
  return `${event.timestamp}  ${event.node}  ${event.kind}  ${String(event['name'] ?? '')}  ${String(event['type'] ?? '')}  → ${String(event['state'] ?? '')}`;
}

/** Streams lifecycle events; each line shows the stream sequence to resume from with --since. */
export async function events(ctx: CommandContext, options: EventOptions): Promise<void> {
  const query = new URLSearchParams();
  if (options.node) query.set('node', options.node);
  if (options.domain) query.set('domain', options.domain);
  if (options.type) query.set('type', options.type);
  if (options.kind) query.set('kind', options.kind);
  if (options.since !== undefined) query.set('since', String(options.since));
  const response = await ctx.http.stream(`/v1/events?${query}`);
  let seen = 0;
  for await (const { id, data } of sseMessages(response)) {
    if (!id || !data) continue;
    const event = JSON.parse(data) as BusEvent;
    ctx.output.out(ctx.output.json ? JSON.stringify({ streamSeq: Number(id), event }) : `${id}  ${describeEvent(event)}`);
    if (options.count !== undefined && ++seen >= options.count) {
      response.destroy();
      return;
    }
  }
}

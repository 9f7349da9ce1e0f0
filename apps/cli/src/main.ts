import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DomainStateActions, VirtError, type DomainDisk, type DomainGraphics, type DomainsPost, type DomainStatePut } from '@virtbus/api-contract';
import * as commands from './commands.js';
import * as net from './network-commands.js';
import * as diskCommands from './disk-commands.js';
import { consoleCommand } from './console.js';
import { migrate } from './migrate.js';
import { GatewayHttp, GatewayUnreachableError } from './http.js';
import { bashCompletion, verbHelp } from './help.js';
import { remoteCommand, resolveConnection, UsageError } from './remotes.js';
import { VERSION } from './version.js';
import { HOSTNET_USAGE, runHostNetCommand } from './hostnet.js';
import { runStorageCommand, STORAGE_USAGE } from './storage-commands.js';
import * as snapshots from './snapshots.js';
import { runVirshCommand, VIRSH_USAGE } from './virsh-commands.js';

export const USAGE = `virtbus — manage domains on virtbus nodes (like virsh)

usage: virtbus [--remote NAME | --url URL] [--token TOKEN] [--ca FILE] [--cert FILE --key FILE] [--node NODE] [--json] COMMAND [ARGS]
       virtbus --version | help [COMMAND] | COMMAND --help

nodes                                 list nodes and whether their agent is online
nodeinfo                              CPU, memory, NUMA and drivers of the node
list [--all] [--state S] [--selector SEL] [--prefix P] [--driver D] [--limit N] [--fleet]
                                      domains of the node (running ones unless --all or --state), every page;
                                      --fleet: of every node, from the gateway's fleet index (node column);
                                      SEL is a Kubernetes label selector (app=web,tier!=db,env in (a,b),!legacy)
dominfo DOMAIN                        one domain
define FILE.json                      define a domain from a DomainsPost JSON file
define --name N --driver D [--vcpus N] [--memory MiB] [--kernel P --initrd P --cmdline S] [--disk PATH]... [--label K=V]...
        [--vnc-password-file FILE | --vnc-password PW]   define FILE.json and create FILE.json take these too:
                                      a VNC screen with this password (8 characters at most; the file's first line)
update DOMAIN [--vcpus N] [--memory MiB] [--autostart|--no-autostart] [--label K=V]... [--no-labels]   labels replace all
undefine DOMAIN
start DOMAIN [--paused] | shutdown DOMAIN [--timeout S] [--force] | destroy | reboot | reset | suspend | resume
domstate DOMAIN [--reason]            run state (and why)
${VIRSH_USAGE}exec DOMAIN [--timeout S] -- CMD...   run a command in a running container
console DOMAIN [--force] [--ro]       attach to the serial console (Ctrl-] leaves)
migrate DOMAIN DEST [--offline] [--paused] [--not-live] [--undefine-source] [--max-downtime MS] [--bandwidth MiBs]
        [--auto-converge] [--post-copy] [--tls] [--copy-storage-all]   move a domain to node DEST (progress on stderr)
net-list [--all] [--limit N] | net-info NET | net-define FILE.json | net-start NET | net-destroy NET | net-undefine NET
net-autostart NET [--disable]         start the network with the agent (or not)
net-dhcp-leases NET                   DHCP leases of an active network
domifaddr DOMAIN                      NIC addresses of a domain from the DHCP leases
attach-disk DOMAIN SOURCE [--target vdb] [--format qcow2|raw] [--bus virtio|sata|ide] [--cdrom] [--readonly] [--live] [--config]
                                      SOURCE is /path/on/node or pool/volume; no --live/--config: live when running
detach-disk DOMAIN TARGET [--live] [--config] [--timeout S]
change-media DOMAIN TARGET [SOURCE] [--eject] [--live] [--config]   insert media into a cdrom drive, or eject it
create FILE.json [--paused]            define and start a transient domain (removed when it shuts off)
import [DOMAIN...]                     adopt domains the node's libvirtd already has (all not yet known without DOMAIN)
setvcpus DOMAIN COUNT [--live] [--config] [--timeout S]   hotplug/unplug vCPUs (up to cpu.maxVcpus) or set the definition's count
setmem DOMAIN MiB [--live] [--config]   balloon target of the running domain, or the definition's currentMemory
define-from-image --name N --driver qemu|kvm --image POOL/VOLUME [--root-size 10G] [--vcpus N] [--memory MiB] [--network NET]...
        [--user-data FILE] [--meta-data FILE] [--network-config FILE]   overlay on the image + cloud-init seed cdrom;
                                      --network: a virtio NIC on that virtual network (net-list), one per flag
snapshot-create DOMAIN [--name N] [--kind internal|external] [--description TEXT]
snapshot-list DOMAIN [--tree] | snapshot-info DOMAIN SNAP | snapshot-revert DOMAIN SNAP
snapshot-delete DOMAIN SNAP [--children|--children-only] [--metadata]
save DOMAIN POOL FILE | restore POOL FILE [--paused]   memory state to/from a file in a dir pool
managedsave DOMAIN | managedsave-remove DOMAIN        agent-kept save image; start resumes from it
events [--kind domain|pool|network|snapshot|operation|graphics|domainevent|all] [--domain UUID] [--type T] [--since SEQ] [--count N]   stream events
${HOSTNET_USAGE}${STORAGE_USAGE}remote add NAME URL [--token-file FILE] [--ca FILE] [--cert FILE --key FILE] | remote list | remote remove NAME | remote default [NAME]
                                      named gateways in ~/.config/virtbus/config.json (the first one added is the default)
help [COMMAND]                        this text, or the usage of one command
completion bash                       bash completion script (virtbus completion bash > /etc/bash_completion.d/virtbus)
environment: VIRTBUS_URL (default: the default remote, else http://127.0.0.1:8080), VIRTBUS_TOKEN, VIRTBUS_CA, VIRTBUS_CERT, VIRTBUS_KEY,
  VIRTBUS_NODE, VIRTBUS_CONFIG (default ~/.config/virtbus/config.json); --url/--token/--ca/--cert/--key and these override the remote
exit codes: 0 done, 1 the gateway or the operation refused or failed, 2 usage error (unknown command or option, missing
  argument, bad config file), 3 the gateway could not be reached; exec exits with the command's code
`;

export async function run(argv: string[], out: (text: string) => void = (text) => process.stdout.write(`${text}\n`)): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      remote: { type: 'string' },
      url: { type: 'string' },
      token: { type: 'string' },
      'token-file': { type: 'string' },
      version: { type: 'boolean', short: 'V' },
      ca: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      node: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
      all: { type: 'boolean', default: false },
      reason: { type: 'boolean', default: false },
      fleet: { type: 'boolean', default: false },
      state: { type: 'string' },
      selector: { type: 'string' },
      prefix: { type: 'string' },
      limit: { type: 'string' },
      label: { type: 'string', multiple: true },
      'no-labels': { type: 'boolean', default: false },
      name: { type: 'string' },
      driver: { type: 'string' },
      vcpus: { type: 'string' },
      memory: { type: 'string' },
      kernel: { type: 'string' },
      initrd: { type: 'string' },
      cmdline: { type: 'string' },
      disk: { type: 'string', multiple: true },
      autostart: { type: 'boolean' },
      'no-autostart': { type: 'boolean' },
      paused: { type: 'boolean', default: false },
      timeout: { type: 'string' },
      holdtime: { type: 'string' },
      hmp: { type: 'boolean' },
      force: { type: 'boolean', default: false },
      ro: { type: 'boolean', default: false },
      domain: { type: 'string' },
      type: { type: 'string' },
      since: { type: 'string' },
      count: { type: 'string' },
      tree: { type: 'boolean', default: false },
      kind: { type: 'string' },
      offline: { type: 'boolean', default: false },
      'not-live': { type: 'boolean', default: false },
      'undefine-source': { type: 'boolean', default: false },
      'max-downtime': { type: 'string' },
      bandwidth: { type: 'string' },
      'auto-converge': { type: 'boolean', default: false },
      'post-copy': { type: 'boolean', default: false },
      tls: { type: 'boolean', default: false },
      'copy-storage-all': { type: 'boolean', default: false },
      disable: { type: 'boolean', default: false },
      description: { type: 'string' },
      children: { type: 'boolean', default: false },
      'children-only': { type: 'boolean', default: false },
      metadata: { type: 'boolean', default: false },
      target: { type: 'string' },
      format: { type: 'string' },
      bus: { type: 'string' },
      cdrom: { type: 'boolean', default: false },
      readonly: { type: 'boolean', default: false },
      live: { type: 'boolean', default: false },
      config: { type: 'boolean', default: false },
      eject: { type: 'boolean', default: false },
      'vnc-password': { type: 'string' },
      'vnc-password-file': { type: 'string' },
      'source-dev': { type: 'string', multiple: true },
      backing: { type: 'string' },
      shrink: { type: 'boolean', default: false },
      create: { type: 'boolean', default: false },
      image: { type: 'string' },
      'root-size': { type: 'string' },
      'user-data': { type: 'string' },
      'meta-data': { type: 'string' },
      'network-config': { type: 'string' },
      network: { type: 'string', multiple: true },
    },
  });
  const [command, ...rest] = positionals;
  if (values.version) {
    out(`virtbus ${VERSION}`);
    return 0;
  }
  if (command === 'help' || (values.help && command)) {
    const verb = command === 'help' ? rest[0] : command;
    if (!verb) {
      out(USAGE);
      return 0;
    }
    const text = verbHelp(USAGE, verb);
    if (text === undefined) throw new UsageError(`unknown command ${verb}; see virtbus help`);
    out(`usage: virtbus [options] ${text}`);
    return 0;
  }
  if (values.help || !command) {
    out(USAGE);
    return command || values.help ? 0 : 2;
  }
  if (command === 'completion') {
    if (rest[0] !== 'bash') throw new UsageError('completion needs a shell: bash');
    out(bashCompletion(USAGE));
    return 0;
  }
  if (command === 'remote') {
    return remoteCommand(rest, { tokenFile: values['token-file'], ca: values.ca, cert: values.cert, key: values.key }, out, values.json ?? false);
  }
  const int = (name: string, text: string | undefined) => {
    if (text === undefined) return undefined;
    if (!/^\d+$/.test(text)) throw new VirtError('INVALID_ARG', `--${name} takes a whole number`);
    return Number(text);
  };
  const need = (what: string) => {
    const value = rest[0];
    if (!value) throw new UsageError(`${command} needs a ${what}`);
    return value;
  };
  const second = (what: string) => {
    const value = rest[1];
    if (!value) throw new UsageError(`${command} needs a ${what}`);
    return value;
  };
  const third = (what: string) => {
    const value = rest[2];
    if (!value) throw new UsageError(`${command} needs a ${what}`);
    return value;
  };
  const limit = () => {
    const max = int('limit', values.limit);
    if (max === 0) throw new VirtError('INVALID_ARG', '--limit takes a number above 0');
    return max;
  };
  const labels = () => {
    if (values['no-labels']) return {};
    if (!values.label) return undefined;
    return Object.fromEntries(
      values.label.map((pair) => {
        const at = pair.indexOf('=');
        if (at <= 0) throw new VirtError('INVALID_ARG', `--label takes KEY=VALUE, got ${JSON.stringify(pair)}`);
        return [pair.slice(0, at), pair.slice(at + 1)];
      }),
    );
  };
  /** --vnc-password(-file): a VNC screen with that password, over the graphics the spec may already have. */
  const withVncPassword = <T extends { graphics?: DomainGraphics }>(spec: T): T => {
    const password = values['vnc-password-file'] !== undefined ? readFileSync(values['vnc-password-file'], 'utf8').split('\n')[0]! : values['vnc-password'];
    return password === undefined ? spec : { ...spec, graphics: { ...spec.graphics, type: spec.graphics?.type ?? 'vnc', password } };
  };
  const scope = () => ({ ...(values.live ? { live: true } : {}), ...(values.config ? { config: true } : {}) });
  const ctx: commands.CommandContext = {
    http: new GatewayHttp(resolveConnection(values)),
    output: { out, json: values.json ?? false },
    ...((values.node ?? process.env.VIRTBUS_NODE) ? { node: values.node ?? process.env.VIRTBUS_NODE } : {}),
  };
  const holdTime = int('holdtime', values.holdtime);
  const virsh = await runVirshCommand(ctx, command, need, rest, { ...(holdTime !== undefined ? { holdTime } : {}), ...(values.driver ? { driver: values.driver } : {}), ...(values.hmp ? { hmp: true } : {}) });
  if (virsh !== undefined) return virsh;

  switch (command) {
    case 'nodes':
      await commands.nodes(ctx);
      return 0;
    case 'nodeinfo':
      await commands.nodeinfo(ctx);
      return 0;
    case 'list':
      await (values.fleet ? commands.listFleet : commands.list)(
        ctx,
        values.all ?? false,
        { state: values.state, selector: values.selector, prefix: values.prefix, driver: values.driver },
        limit(),
      );
      return 0;
    case 'dominfo':
      await commands.dominfo(ctx, need('domain'));
      return 0;
    case 'define': {
      if (rest[0]) {
        await commands.define(ctx, withVncPassword(await commands.readSpec(rest[0])));
        return 0;
      }
      if (!values.name || !values.driver) throw new VirtError('INVALID_ARG', 'define needs FILE.json, or --name and --driver');
      const spec: Record<string, unknown> = { name: values.name, driver: values.driver };
      if (values.vcpus) spec.vcpus = int('vcpus', values.vcpus);
      if (values.memory) spec.memory = int('memory', values.memory);
      if (values.kernel) spec.os = { kernel: values.kernel, initrd: values.initrd, cmdline: values.cmdline };
      if (values.disk) spec.disks = values.disk.map((path) => ({ source: { path }, format: path.endsWith('.qcow2') ? 'qcow2' : 'raw' }));
      if (labels()) spec.labels = labels();
      await commands.define(ctx, withVncPassword(spec as DomainsPost));
      return 0;
    }
    case 'update': {
      const put: Record<string, unknown> = {};
      if (values.vcpus) put.vcpus = int('vcpus', values.vcpus);
      if (values.memory) put.memory = int('memory', values.memory);
      if (values.autostart) put.autostart = true;
      if (values['no-autostart']) put.autostart = false;
      if (labels()) put.labels = labels();
      await commands.update(ctx, need('domain'), put);
      return 0;
    }
    case 'undefine':
      await commands.undefine(ctx, need('domain'));
      return 0;
    case 'domstate':
      await commands.domstate(ctx, need('domain'), values.reason ?? false);
      return 0;
    case 'exec':
      return commands.exec(ctx, need('domain'), rest.slice(1), int('timeout', values.timeout));
    case 'console':
      return consoleCommand(ctx, need('domain'), { force: values.force ?? false, readOnly: values.ro ?? false });
    case 'migrate': {
      const destination = rest[1];
      if (!destination) throw new VirtError('INVALID_ARG', 'migrate needs DOMAIN and DEST');
      const maxDowntimeMs = int('max-downtime', values['max-downtime']);
      const bandwidthMiBs = int('bandwidth', values.bandwidth);
      const tty = process.stderr.isTTY;
      return migrate(
        ctx,
        need('domain'),
        {
          destination,
          live: !values['not-live'],
          paused: values.paused ?? false,
          offline: values.offline ?? false,
          undefineSource: values['undefine-source'] ?? false,
          autoConverge: values['auto-converge'] ?? false,
          postCopy: values['post-copy'] ?? false,
          tls: values.tls ?? false,
          copyStorage: values['copy-storage-all'] ? 'all' : 'none',
          ...(maxDowntimeMs !== undefined ? { maxDowntimeMs } : {}),
          ...(bandwidthMiBs !== undefined ? { bandwidthMiBs } : {}),
        },
        (line, final) => {
          if (tty) process.stderr.write(`\r${line}\x1b[K`);
          else if (final) process.stderr.write(`${line}\n`);
        },
      ).finally(() => tty && process.stderr.write('\n'));
    }
    case 'snapshot-create':
      await snapshots.snapshotCreate(ctx, need('domain'), {
        ...(values.name ? { name: values.name } : {}),
        ...(values.kind ? { kind: values.kind } : {}),
        ...(values.description ? { description: values.description } : {}),
      });
      return 0;
    case 'snapshot-list':
      await snapshots.snapshotList(ctx, need('domain'), values.tree ?? false);
      return 0;
    case 'snapshot-info':
      await snapshots.snapshotInfo(ctx, need('domain'), second('snapshot'));
      return 0;
    case 'snapshot-revert':
      await snapshots.snapshotRevert(ctx, need('domain'), second('snapshot'));
      return 0;
    case 'snapshot-delete':
      await snapshots.snapshotDelete(ctx, need('domain'), second('snapshot'), {
        ...(values.children ? { mode: 'children' } : values['children-only'] ? { mode: 'children-only' } : {}),
        ...(values.metadata ? { metadataOnly: true } : {}),
      });
      return 0;
    case 'save':
      await snapshots.save(ctx, need('domain'), second('pool'), third('file name'));
      return 0;
    case 'restore':
      await snapshots.restore(ctx, need('pool'), second('file name'), values.paused ?? false);
      return 0;
    case 'managedsave':
      await snapshots.managedSave(ctx, need('domain'));
      return 0;
    case 'managedsave-remove':
      await snapshots.managedSaveRemove(ctx, need('domain'));
      return 0;
    case 'attach-disk': {
      const source = rest[1];
      if (!source) throw new VirtError('INVALID_ARG', 'attach-disk needs DOMAIN and SOURCE');
      const disk: Record<string, unknown> = { source: diskCommands.diskSource(source) };
      if (values.target) disk.target = values.target;
      if (values.format) disk.format = values.format;
      if (values.bus) disk.bus = values.bus;
      if (values.cdrom) disk.device = 'cdrom';
      if (values.readonly) disk.readonly = true;
      await diskCommands.attachDisk(ctx, need('domain'), { disk: disk as DomainDisk, ...scope() });
      return 0;
    }
    case 'detach-disk': {
      const target = rest[1];
      if (!target) throw new VirtError('INVALID_ARG', 'detach-disk needs DOMAIN and TARGET');
      const timeout = int('timeout', values.timeout);
      await diskCommands.detachDisk(ctx, need('domain'), target, { ...scope(), ...(timeout !== undefined ? { timeout } : {}) });
      return 0;
    }
    case 'define-from-image': {
      if (!values.name || !values.driver || !values.image) throw new VirtError('INVALID_ARG', 'define-from-image needs --name, --driver and --image POOL/VOLUME');
      const image = diskCommands.diskSource(values.image);
      if (!('pool' in image)) throw new VirtError('INVALID_ARG', '--image takes POOL/VOLUME');
      const domain: Record<string, unknown> = { name: values.name, driver: values.driver };
      if (values.vcpus) domain.vcpus = int('vcpus', values.vcpus);
      if (values.memory) domain.memory = int('memory', values.memory);
      if (values.network) domain.nics = values.network.map((source) => ({ type: 'network', source }));
      const file = (path: string | undefined) => (path === undefined ? undefined : readFileSync(path, 'utf8'));
      const seed = { userData: file(values['user-data']), metaData: file(values['meta-data']), networkConfig: file(values['network-config']) };
      const cloudInit = Object.fromEntries(Object.entries(seed).filter(([, value]) => value !== undefined));
      await diskCommands.defineFromImage(ctx, {
        domain: domain as DomainsPost,
        image,
        ...(values['root-size'] ? { rootSize: values['root-size'] } : {}),
        ...(Object.keys(cloudInit).length > 0 ? { cloudInit } : {}),
      });
      return 0;
    }
    case 'change-media': {
      const [, target, source] = rest;
      if (!target) throw new VirtError('INVALID_ARG', 'change-media needs DOMAIN and TARGET');
      if (!source && !values.eject) throw new VirtError('INVALID_ARG', 'change-media needs a SOURCE, or --eject');
      if (source && values.eject) throw new VirtError('INVALID_ARG', 'change-media takes a SOURCE or --eject, not both');
      await diskCommands.changeMedia(ctx, need('domain'), target, { ...(source ? { source: diskCommands.diskSource(source) } : {}), ...scope() });
      return 0;
    }
    case 'import':
      await commands.importDomains(ctx, rest);
      return 0;
    case 'create':
      if (!rest[0]) throw new VirtError('INVALID_ARG', 'create needs FILE.json');
      await commands.create(ctx, rest[0], withVncPassword(await commands.readSpec(rest[0])), values.paused ?? false);
      return 0;
    case 'setvcpus': {
      const count = int('COUNT', rest[1]);
      if (count === undefined) throw new VirtError('INVALID_ARG', 'setvcpus needs DOMAIN and COUNT');
      const timeout = int('timeout', values.timeout);
      await diskCommands.setVcpus(ctx, need('domain'), { count, ...scope(), ...(timeout !== undefined ? { timeout } : {}) });
      return 0;
    }
    case 'setmem': {
      const memory = int('MiB', rest[1]);
      if (memory === undefined) throw new VirtError('INVALID_ARG', 'setmem needs DOMAIN and MiB');
      await diskCommands.setMemory(ctx, need('domain'), { memory, ...scope() });
      return 0;
    }
    case 'events':
      await commands.events(ctx, {
        ...(ctx.node ? { node: ctx.node } : {}),
        ...(values.domain ? { domain: values.domain } : {}),
        ...(values.type ? { type: values.type } : {}),
        ...(values.kind ? { kind: values.kind } : {}),
        ...(values.since !== undefined ? { since: int('since', values.since) } : {}),
        ...(values.count !== undefined ? { count: int('count', values.count) } : {}),
      });
      return 0;
    case 'net-list':
      await net.netList(ctx, values.all ?? false, limit());
      return 0;
    case 'net-info':
      await net.netInfo(ctx, need('network'));
      return 0;
    case 'net-define':
      await net.netDefine(ctx, need('file'));
      return 0;
    case 'net-start':
      await net.netState(ctx, need('network'), 'start');
      return 0;
    case 'net-destroy':
      await net.netState(ctx, need('network'), 'stop');
      return 0;
    case 'net-undefine':
      await net.netUndefine(ctx, need('network'));
      return 0;
    case 'net-autostart':
      await net.netAutostart(ctx, need('network'), !(values.disable ?? false));
      return 0;
    case 'net-dhcp-leases':
      await net.netDhcpLeases(ctx, need('network'));
      return 0;
    case 'domifaddr':
      await net.domifaddr(ctx, need('domain'));
      return 0;
    default: {
      const hostnet = await runHostNetCommand(ctx, command, rest, { ...(values.timeout ? { timeout: int('timeout', values.timeout) } : {}) });
      if (hostnet !== undefined) return hostnet;
      const tty = process.stderr.isTTY;
      const storage = await runStorageCommand(
        ctx,
        command,
        rest,
        {
          ...(values.name ? { name: values.name } : {}),
          ...(values.type ? { type: values.type } : {}),
          ...(values.target ? { target: values.target } : {}),
          ...(values['source-dev'] ? { sourceDevices: values['source-dev'] } : {}),
          ...(values.format ? { format: values.format } : {}),
          ...(values.backing ? { backing: values.backing } : {}),
          shrink: values.shrink ?? false,
          create: values.create ?? false,
          disable: values.disable ?? false,
          ...(values.limit !== undefined ? { limit: limit() } : {}),
          ...(values.prefix !== undefined ? { prefix: values.prefix } : {}),
        },
        (line, final) => {
          if (tty) process.stderr.write(`\r${line}\x1b[K${final ? '\n' : ''}`);
          else if (final) process.stderr.write(`${line}\n`);
        },
      );
      if (storage !== undefined) return storage;
      if (!(DomainStateActions as readonly string[]).includes(command)) throw new UsageError(`unknown command ${command}; see virtbus help`);
      const change: DomainStatePut = { action: command as DomainStatePut['action'] };
      if (values.timeout) change.timeout = int('timeout', values.timeout);
      if (values.force) change.force = true;
      if (values.paused) change.paused = true;
      await commands.changeState(ctx, need('domain'), change);
      return 0;
    }
  }
}

/** Exit codes (docs/CLI.md): 0 done, 1 refused or failed, 2 usage error, 3 gateway unreachable. */
export const ExitCodes = { ok: 0, failed: 1, usage: 2, unreachable: 3 } as const;

export function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError) return ExitCodes.usage;
  if (error instanceof GatewayUnreachableError) return ExitCodes.unreachable;
  if (typeof (error as { code?: unknown }).code === 'string' && (error as { code: string }).code.startsWith('ERR_PARSE_ARGS_')) return ExitCodes.usage;
  return ExitCodes.failed;
}

export async function main(argv: string[]): Promise<number> {
  try {
    return await run(argv);
  } catch (error) {
    if (error instanceof VirtError) process.stderr.write(`error: ${error.message} (${error.code})\n`);
    else process.stderr.write(`error: ${(error as Error).message}\n`);
    return exitCodeOf(error);
  }
}

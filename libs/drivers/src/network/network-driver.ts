import { readFileSync } from 'node:fs';
import { readFile, rm, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { VirtError, type DhcpLease } from '@virtbus/api-contract';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../util/atomic.js';
import { inNetns, runInNetns } from '../util/netns.js';
import { runTool } from '../storage/run.js';
import { isProcessAlive, readProcStat, signalProcess, waitForProcessExit } from '../qemu/process.js';
import { formatIp, parseCidr } from './addr.js';
import { nftTableName, type NetworkDefinition } from './definition.js';
import { dhcpHostsFile, dnsHostsFile, dnsmasqConfig, dnsmasqPaths, needsDnsmasq, parseLeases, type DnsmasqPaths } from './dnsmasq.js';
import { nftRuleset } from './nft.js';

export interface NetworkDriverOptions {
  /** Directory for per-network files (dnsmasq config, pid, leases); one subdirectory per network uuid. */
  stateDir: string;
  /** Network namespace (/run/netns/<name>) holding this node's bridges, taps, nft tables and dnsmasq. */
  netns?: string;
  logger: Logger;
}

/** What a running network leaves behind for a restarted agent to find. */
export interface NetworkRuntime {
  dnsmasqPid?: number;
  dnsmasqStartTime?: number;
}

interface IpLink {
  ifname: string;
  operstate?: string;
  master?: string;
  stats64?: { rx: Record<string, number>; tx: Record<string, number> };
}

const notFound = (error: unknown) => /does not exist|Cannot find device|No such file|No such device/i.test(String((error as Error)?.message));

/** Linux bridges, one dnsmasq and one nftables table per network, all inside the node's network namespace. */
export class NetworkDriver {
  constructor(private readonly options: NetworkDriverOptions) {}

  get netns(): string | undefined {
    return this.options.netns;
  }

  paths(definition: Pick<NetworkDefinition, 'uuid'>): DnsmasqPaths {
    return dnsmasqPaths(join(this.options.stateDir, definition.uuid.toLowerCase()));
  }

  /** `ip`/`nft`/`sysctl` in the node's namespace. */
  run(command: string, args: readonly string[]): Promise<string> {
    return runInNetns(this.options.netns, command, args);
  }

  async links(extra: readonly string[] = []): Promise<IpLink[]> {
    const text = await this.run('ip', ['-j', ...extra, 'link', 'show']);
    return text.trim() ? (JSON.parse(text) as IpLink[]) : [];
  }

  async linkExists(name: string): Promise<boolean> {
    try {
      await this.run('ip', ['link', 'show', 'dev', name]);
      return true;
    } catch (error) {
      if (notFound(error)) return false;
      throw error;
    }
  }

  async start(definition: NetworkDefinition): Promise<NetworkRuntime> {
    if (definition.mode === 'bridge') {
      if (!(await this.linkExists(definition.bridge))) throw new VirtError('OPERATION_FAILED', `bridge ${definition.bridge} does not exist`);
      return {};
    }
    if (await this.linkExists(definition.bridge)) throw new VirtError('OPERATION_FAILED', `interface ${definition.bridge} already exists`);
    try {
      await this.run('ip', ['link', 'add', 'name', definition.bridge, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
      if (definition.ipv4) await this.run('ip', ['address', 'add', definition.ipv4.address, 'dev', definition.bridge]);
      if (definition.ipv6) await this.run('ip', ['address', 'add', definition.ipv6.address, 'dev', definition.bridge, 'nodad']);
      await this.run('ip', ['link', 'set', 'dev', definition.bridge, 'up']);
      if (definition.mode === 'nat' || definition.mode === 'routed') await this.enableForwarding(definition);
      await this.applyFirewall(definition);
      return await this.startDnsmasq(definition);
    } catch (error) {
      await this.stop(definition, {}).catch((cleanup: unknown) => this.options.logger.warn({ err: cleanup, network: definition.name }, 'cleanup after failed start'));
      throw error instanceof VirtError ? error : new VirtError('OPERATION_FAILED', `network ${definition.name} failed to start: ${(error as Error).message}`, { cause: error });
    }
  }

  /** Removes everything the network owns; parts already gone are fine. */
  async stop(definition: NetworkDefinition, runtime: NetworkRuntime): Promise<void> {
    if (definition.mode === 'bridge') return;
    await this.stopDnsmasq(definition, runtime);
    await this.run('nft', ['delete', 'table', 'inet', nftTableName(definition)]).catch((error: unknown) => {
      if (!notFound(error)) throw error;
    });
    for (const link of await this.links(['master', definition.bridge]).catch(() => [] as IpLink[])) {
      await this.run('ip', ['link', 'delete', 'dev', link.ifname]).catch((error: unknown) => this.options.logger.warn({ err: error, tap: link.ifname }, 'could not delete tap'));
    }
    await this.run('ip', ['link', 'delete', 'dev', definition.bridge, 'type', 'bridge']).catch((error: unknown) => {
      if (!notFound(error)) throw error;
    });
    await rm(this.paths(definition).dir, { recursive: true, force: true });
  }

  /** After an agent restart: true when the network is still up (dnsmasq respawned and firewall re-applied if needed). */
  async adopt(definition: NetworkDefinition, runtime: NetworkRuntime): Promise<NetworkRuntime | undefined> {
    if (!(await this.linkExists(definition.bridge))) return undefined;
    if (definition.mode === 'bridge') return {};
    await this.applyFirewall(definition);
    if (!needsDnsmasq(definition)) return {};
    if (this.dnsmasqAlive(definition, runtime)) return runtime;
    this.options.logger.warn({ network: definition.name, pid: runtime.dnsmasqPid }, 'dnsmasq of an active network is gone; starting it again');
    return this.startDnsmasq(definition);
  }

  /** Static hosts and DNS records changed: rewrite the files dnsmasq re-reads on SIGHUP (no restart, leases kept). */
  async reloadHosts(definition: NetworkDefinition, runtime: NetworkRuntime): Promise<void> {
    const paths = this.paths(definition);
    await this.writeHostFiles(definition, paths);
    if (!runtime.dnsmasqPid || !runtime.dnsmasqStartTime) return;
    if (!signalProcess(runtime.dnsmasqPid, runtime.dnsmasqStartTime, 'SIGHUP')) {
      throw new VirtError('OPERATION_FAILED', `dnsmasq of network ${definition.name} is not running`);
    }
  }

  async leases(definition: NetworkDefinition): Promise<DhcpLease[]> {
    const text = await readFile(this.paths(definition).leaseFile, 'utf8').catch(() => '');
    return parseLeases(text, definition);
  }

  private async enableForwarding(definition: NetworkDefinition): Promise<void> {
    if (definition.ipv4) await this.run('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
    if (definition.ipv6) await this.run('sysctl', ['-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
  }

  /** Replaces the network's table atomically: create-if-missing, delete, define again, in one nft transaction. */
  private async applyFirewall(definition: NetworkDefinition): Promise<void> {
    const table = nftTableName(definition);
    const paths = this.paths(definition);
    const file = join(paths.dir, 'nftables.conf');
    await mkdir(paths.dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(file, `table inet ${table}\ndelete table inet ${table}\n${nftRuleset(definition)}`);
    await this.run('nft', ['-f', file]);
  }

  private async writeHostFiles(definition: NetworkDefinition, paths: DnsmasqPaths): Promise<void> {
    await writeFileAtomic(paths.hostsFile, dhcpHostsFile(definition));
    await writeFileAtomic(paths.addnHosts, dnsHostsFile(definition));
  }

  private async startDnsmasq(definition: NetworkDefinition): Promise<NetworkRuntime> {
    if (!needsDnsmasq(definition)) return {};
    const paths = this.paths(definition);
    await mkdir(paths.dir, { recursive: true, mode: 0o700 });
    await this.writeHostFiles(definition, paths);
    await writeFileAtomic(paths.conf, dnsmasqConfig(definition, paths));
    await rm(paths.pidFile, { force: true });
    // dnsmasq forks into the background once its sockets are bound; a non-zero exit carries the reason on stderr
    const command = inNetns(this.options.netns, 'dnsmasq', [`--conf-file=${paths.conf}`]);
    await runTool(command.command, command.args);
    let pid: number | undefined;
    for (let attempt = 0; attempt < 100 && pid === undefined; attempt++) {
      const text = await readFile(paths.pidFile, 'utf8').catch(() => '');
      if (/^\d+\s*$/.test(text)) pid = Number(text.trim());
      else await new Promise((resolve) => setTimeout(resolve, 20));
    }
    if (pid === undefined) throw new VirtError('OPERATION_FAILED', `dnsmasq of network ${definition.name} wrote no pid file`);
    const stat = await readProcStat(pid);
    if (!stat) throw new VirtError('OPERATION_FAILED', `dnsmasq of network ${definition.name} exited at once`);
    this.options.logger.info({ network: definition.name, pid, listen: this.listenAddresses(definition) }, 'dnsmasq started');
    return { dnsmasqPid: pid, dnsmasqStartTime: stat.startTime };
  }

  private listenAddresses(definition: NetworkDefinition): string[] {
    return [definition.ipv4, definition.ipv6].filter((ip) => ip !== undefined).map((ip) => formatIp(parseCidr(ip.address).address));
  }

  /** Only our dnsmasq: same pid, same start time, and its command line names our config file. */
  private dnsmasqAlive(definition: NetworkDefinition, runtime: NetworkRuntime): boolean {
    if (!runtime.dnsmasqPid || runtime.dnsmasqStartTime === undefined) return false;
    if (!isProcessAlive(runtime.dnsmasqPid, runtime.dnsmasqStartTime)) return false;
    try {
      return readFileSync(`/proc/${runtime.dnsmasqPid}/cmdline`, 'utf8').includes(this.paths(definition).conf);
    } catch {
      return false;
    }
  }

  private async stopDnsmasq(definition: NetworkDefinition, runtime: NetworkRuntime): Promise<void> {
    const paths = this.paths(definition);
    let { dnsmasqPid: pid, dnsmasqStartTime: startTime } = runtime;
    if (pid === undefined) {
      // a start that failed half-way may have left a pid file without a runtime
      const text = await readFile(paths.pidFile, 'utf8').catch(() => '');
      if (/^\d+\s*$/.test(text)) {
        pid = Number(text.trim());
        startTime = (await readProcStat(pid))?.startTime;
      }
    }
    if (pid === undefined || startTime === undefined) return;
    if (!this.dnsmasqAlive(definition, { dnsmasqPid: pid, dnsmasqStartTime: startTime })) return;
    signalProcess(pid, startTime, 'SIGTERM');
    if (!(await waitForProcessExit(pid, startTime, 5_000))) {
      signalProcess(pid, startTime, 'SIGKILL');
      await waitForProcessExit(pid, startTime, 5_000);
    }
  }
}

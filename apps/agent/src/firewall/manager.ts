import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  VirtError,
  checkFirewallRules,
  isObjectName,
  type DomainNic,
  type FirewallRuleSet,
  type FirewallRuleSetPut,
  type FirewallRuleSetsPost,
  type LifecycleEvent,
} from '@virtbus/api-contract';
import { applyNicFilter, removeNicFilter, runningTapNics, writeJsonAtomic, type DomainRecord } from '@virtbus/drivers';
import type { Logger } from 'pino';
import { StateDir } from '../state-dir.js';

type StoredRuleSet = Omit<FirewallRuleSet, 'bindings'>;

/** A rule set applied to one NIC device; persisted so a restarted agent knows what to re-apply or remove. */
export interface NicBinding {
  ruleSet: string;
  domain: string;
  netns?: string;
  device: string;
  mac: string;
  ips: string[];
}

/** What the firewall needs to know about a domain's NICs and their networks. */
export interface FirewallDomainSource {
  record(id: string): DomainRecord;
  /** Known addresses (static DHCP hosts) of a MAC on a network, for IP anti-spoofing. */
  addressesOf?(network: string, mac: string): string[];
}

export interface FirewallManagerOptions {
  stateDir: string;
  logger: Logger;
}

/** libvirt's nwfilter, simplified: named rule sets, bound to running domain NICs as nftables chains. */
export class FirewallManager {
  private readonly ruleSets = new Map<string, StoredRuleSet>();
  private bindings: NicBinding[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private source: FirewallDomainSource | undefined;
  private readonly dir: string;
  private readonly bindingsFile: string;

  constructor(private readonly options: FirewallManagerOptions) {
    this.dir = StateDir.firewallRulesets(options.stateDir);
    this.bindingsFile = StateDir.firewallBindings(options.stateDir);
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    for (const file of await readdir(this.dir)) {
      if (!file.endsWith('.json') || !isObjectName(file.slice(0, -5))) continue;
      try {
        const stored = JSON.parse(await readFile(join(this.dir, file), 'utf8')) as StoredRuleSet;
        checkFirewallRules(stored.rules);
        this.ruleSets.set(stored.name, stored);
      } catch (error) {
        // kept for a person to inspect, never deleted
        this.options.logger.error({ err: error, file }, 'ignoring unreadable firewall rule set');
      }
    }
    try {
      this.bindings = JSON.parse(await readFile(this.bindingsFile, 'utf8')) as NicBinding[];
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.options.logger.error({ err: error }, 'unreadable firewall bindings; starting with none');
    }
  }

  private serial<T>(run: () => Promise<T>): Promise<T> {
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private view(stored: StoredRuleSet): FirewallRuleSet {
    const bindings = this.bindings.filter((b) => b.ruleSet === stored.name).map((b) => ({ domain: b.domain, device: b.device, mac: b.mac, ips: [...b.ips] }));
    return { ...structuredClone(stored), bindings };
  }

  private stored(name: string): StoredRuleSet {
    const found = this.ruleSets.get(name);
    if (!found) throw new VirtError('NOT_FOUND', `no firewall rule set named ${name}`);
    return found;
  }

  list(): FirewallRuleSet[] {
    return [...this.ruleSets.values()].sort((a, b) => a.name.localeCompare(b.name)).map((r) => this.view(r));
  }

  get(name: string): FirewallRuleSet {
    return this.view(this.stored(name));
  }

  async define(post: FirewallRuleSetsPost): Promise<FirewallRuleSet> {
    return this.serial(async () => {
      if (this.ruleSets.has(post.name)) throw new VirtError('OPERATION_INVALID', `firewall rule set ${post.name} already exists`);
      checkFirewallRules(post.rules);
      const stored: StoredRuleSet = { ...structuredClone(post), updatedAt: new Date().toISOString() };
      await writeJsonAtomic(join(this.dir, `${post.name}.json`), stored);
      this.ruleSets.set(post.name, stored);
      return this.view(stored);
    });
  }

  /** Saves the new rules, then re-applies them to every bound NIC (each NIC in one nft transaction). */
  async update(name: string, put: FirewallRuleSetPut): Promise<FirewallRuleSet> {
    return this.serial(async () => {
      this.stored(name);
      checkFirewallRules(put.rules);
      const stored: StoredRuleSet = { name, ...structuredClone(put), updatedAt: new Date().toISOString() };
      await writeJsonAtomic(join(this.dir, `${name}.json`), stored);
      this.ruleSets.set(name, stored);
      const failed: string[] = [];
      for (const binding of this.bindings.filter((b) => b.ruleSet === name)) {
        await this.applyBinding(binding).catch((error: unknown) => {
          this.options.logger.error({ err: error, device: binding.device }, 'could not re-apply firewall rule set');
          failed.push(`${binding.device}: ${(error as Error).message}`);
        });
      }
      if (failed.length) throw new VirtError('OPERATION_FAILED', `rule set ${name} saved, but not applied to ${failed.join('; ')}`);
      return this.view(stored);
    });
  }

  async delete(name: string): Promise<FirewallRuleSet> {
    return this.serial(async () => {
      const stored = this.stored(name);
      const users = this.bindings.filter((b) => b.ruleSet === name);
      if (users.length) throw new VirtError('OPERATION_INVALID', `rule set ${name} is in use by ${users.map((b) => b.device).join(', ')}`);
      const view = this.view(stored);
      await rm(join(this.dir, `${name}.json`), { force: true });
      this.ruleSets.delete(name);
      return view;
    });
  }

  private applyBinding(binding: NicBinding): Promise<void> {
    const ruleSet = this.stored(binding.ruleSet);
    return applyNicFilter({ netns: binding.netns, device: binding.device, mac: binding.mac, ips: binding.ips, ruleSet });
  }

  private async saveBindings(): Promise<void> {
    await writeJsonAtomic(this.bindingsFile, this.bindings);
  }

  /** Applies a rule set to a NIC device and remembers the binding (also the way to bind a NIC virtbus did not start). */
  async bind(binding: NicBinding): Promise<void> {
    return this.serial(async () => {
      this.stored(binding.ruleSet);
      await this.applyBinding(binding);
      this.bindings = [...this.bindings.filter((b) => !(b.device === binding.device && b.netns === binding.netns)), binding];
      await this.saveBindings();
    });
  }

  async unbind(device: string, netns: string | undefined): Promise<void> {
    return this.serial(() => this.unbindNow((b) => b.device === device && b.netns === netns));
  }

  private async unbindNow(which: (binding: NicBinding) => boolean): Promise<void> {
    const leaving = this.bindings.filter(which);
    if (leaving.length === 0) return;
    for (const binding of leaving) {
      await removeNicFilter({ netns: binding.netns, device: binding.device }).catch((error: unknown) =>
        this.options.logger.error({ err: error, device: binding.device }, 'could not remove firewall chains'),
      );
    }
    this.bindings = this.bindings.filter((b) => !leaving.includes(b));
    await this.saveBindings();
  }

  /** Makes a domain's bindings match its running tap NICs: apply for NICs with a filter, remove the rest. */
  async syncDomain(uuid: string, source: FirewallDomainSource): Promise<void> {
    return this.serial(async () => {
      let record: DomainRecord | undefined;
      try {
        record = source.record(uuid);
      } catch {
        record = undefined;
      }
      const running = record && (record.state === 'running' || record.state === 'paused' || record.state === 'blocked');
      const wanted: NicBinding[] = [];
      if (record && running) {
        const taps = runningTapNics(record.runtime);
        for (const tap of taps.nics) {
          const nic: DomainNic | undefined = record.config.nics[tap.index];
          if (!nic?.filter) continue;
          if (!this.ruleSets.has(nic.filter)) {
            this.options.logger.error({ domain: uuid, nic: tap.index, filter: nic.filter }, 'NIC names a firewall rule set that does not exist; its traffic is unfiltered');
            continue;
          }
          const ips = tap.network && source.addressesOf ? source.addressesOf(tap.network, tap.mac) : [];
          wanted.push({ ruleSet: nic.filter, domain: uuid, ...(taps.netns ? { netns: taps.netns } : {}), device: tap.tap, mac: tap.mac, ips });
        }
      }
      const key = (b: NicBinding) => `${b.netns ?? ''}/${b.device}`;
      const wantedKeys = new Set(wanted.map(key));
      await this.unbindNow((b) => b.domain === uuid && !wantedKeys.has(key(b)));
      for (const binding of wanted) {
        try {
          await this.applyBinding(binding);
          this.bindings = [...this.bindings.filter((b) => key(b) !== key(binding)), binding];
        } catch (error) {
          this.options.logger.error({ err: error, domain: uuid, device: binding.device }, 'could not apply firewall rule set to NIC');
        }
      }
      if (wanted.length) await this.saveBindings();
    });
  }

  /** Lifecycle events drive the bindings: a domain that starts gets its filters, one that stops loses them. */
  onLifecycle(event: LifecycleEvent, source: FirewallDomainSource): void {
    const hasBindings = this.bindings.some((b) => b.domain === event.uuid);
    let wantsFilters = false;
    try {
      wantsFilters = source.record(event.uuid).config.nics.some((nic) => nic.filter);
    } catch {
      wantsFilters = false;
    }
    if (!hasBindings && !wantsFilters) return;
    void this.syncDomain(event.uuid, source).catch((error: unknown) => this.options.logger.error({ err: error, domain: event.uuid }, 'firewall sync failed'));
  }

  /** After an agent restart: re-apply for running domains, drop bindings of domains that are gone or stopped. */
  async resync(domains: readonly string[], source: FirewallDomainSource): Promise<void> {
    const bound = new Set(this.bindings.map((b) => b.domain));
    for (const uuid of new Set([...domains, ...bound])) {
      // a domain that does not run and has no binding has nothing to apply or remove (most of 10,000 at start)
      if (!bound.has(uuid) && !this.mayRun(uuid, source)) continue;
      await this.syncDomain(uuid, source);
    }
  }

  private mayRun(uuid: string, source: FirewallDomainSource): boolean {
    try {
      const { state } = source.record(uuid);
      return state === 'running' || state === 'paused' || state === 'blocked';
    } catch {
      return false;
    }
  }

  /** Where domain records come from, for sync() without a source at hand. */
  useSource(source: FirewallDomainSource): void {
    this.source = source;
  }

  /** Brings one domain's NIC bindings up to date (after a hotplug); logs instead of failing the caller. */
  async sync(uuid: string): Promise<void> {
    if (!this.source) return;
    await this.syncDomain(uuid, this.source).catch((error: unknown) => this.options.logger.error({ err: error, domain: uuid }, 'firewall sync failed'));
  }

  /** Waits for queued firewall work (reads, shutdown). */
  async idle(): Promise<void> {
    await this.queue;
  }
}

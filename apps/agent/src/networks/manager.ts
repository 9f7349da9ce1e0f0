import { randomUUID } from 'node:crypto';
import {
  VirtError,
  type DhcpLease,
  type DomainNic,
  type Network,
  type NetworkEventType,
  type NetworkPut,
  type NetworksPost,
  type NetworkStatePut,
} from '@virtbus/api-contract';
import {
  NetworkDriver,
  defaultBridgeName,
  validateNetworkDefinition,
  validateNetworkHosts,
  type NetworkDefinition,
  type NetworkResolver,
  type NicAttachment,
} from '@virtbus/drivers';
import type { Logger } from 'pino';
import { JobLocks } from '../domains/job-lock.js';
import type { EventPublisher } from '../events/publisher.js';
import { NetworkStore, type StoredNetwork } from './store.js';
import { StateDir } from '../state-dir.js';

export interface NetworkManagerOptions {
  node: string;
  stateDir: string;
  /** Network namespace holding the node's bridges, dnsmasq and nft tables (tests, or a dedicated namespace). */
  netns?: string;
  /** Outside a namespace, networks only start when this is set: a stray API call never changes the host's network. */
  manageHostNetworks?: boolean;
  events: EventPublisher;
  logger: Logger;
}

const definitionOf = (network: StoredNetwork): NetworkDefinition => ({
  name: network.name,
  uuid: network.uuid,
  mode: network.mode,
  bridge: network.bridge,
  ...(network.uplink ? { uplink: network.uplink } : {}),
  ...(network.domain ? { domain: network.domain } : {}),
  ...(network.ipv4 ? { ipv4: network.ipv4 } : {}),
  ...(network.ipv6 ? { ipv6: network.ipv6 } : {}),
  dnsHosts: network.dnsHosts,
});

/** Owns the node's virtual networks: definitions on disk, one job at a time per network, lifecycle events. */
export class NetworkManager implements NetworkResolver {
  readonly driver: NetworkDriver;
  private readonly networks = new Map<string, StoredNetwork>();
  private readonly locks = new JobLocks();
  private readonly store: NetworkStore;

  constructor(private readonly options: NetworkManagerOptions) {
    this.store = new NetworkStore(options.stateDir, options.logger);
    this.driver = new NetworkDriver({
      stateDir: StateDir.driver(options.stateDir, 'network'),
      ...(options.netns ? { netns: options.netns } : {}),
      logger: options.logger.child({ component: 'network' }),
    });
  }

  get netns(): string | undefined {
    return this.options.netns;
  }

  async init(): Promise<void> {
    for (const network of await this.store.loadAll()) this.networks.set(network.name, network);
    for (const network of this.networks.values()) {
      if (network.active) {
        // Still active from before the agent restarted: re-adopt bridge and dnsmasq, publish nothing new.
        try {
          const runtime = await this.driver.adopt(definitionOf(network), network.runtime ?? {});
          if (runtime) {
            network.runtime = runtime;
            await this.store.save(network);
            continue;
          }
          this.options.logger.warn({ network: network.name }, 'bridge of an active network is gone');
        } catch (error) {
          this.options.logger.error({ err: error, network: network.name }, 'active network could not be adopted');
        }
        await this.driver.stop(definitionOf(network), network.runtime ?? {}).catch(() => undefined);
        network.active = false;
        delete network.runtime;
        await this.store.save(network);
        await this.emit(network, 'STOPPED');
      } else if (network.autostart) {
        await this.changeState(network.name, { action: 'start' }).catch((error: unknown) =>
          this.options.logger.error({ err: error, network: network.name }, 'network autostart failed'),
        );
      }
    }
  }

  list(): Network[] {
    return [...this.networks.keys()].sort().map((name) => this.view(this.network(name)));
  }

  get(name: string): Network {
    return this.view(this.network(name));
  }

  async define(post: NetworksPost): Promise<Network> {
    return this.locks.run(`net:${post.name}`, async () => {
      if (this.networks.has(post.name)) throw new VirtError('NETWORK_EXISTS', `network ${post.name} already exists`);
      const uuid = (post.uuid ?? randomUUID()).toLowerCase();
      if ([...this.networks.values()].some((other) => other.uuid === uuid)) throw new VirtError('NETWORK_EXISTS', `a network with uuid ${uuid} already exists`);
      if (post.mode === 'bridge' && !post.bridge) throw new VirtError('INVALID_ARG', 'a bridge-mode network must name its bridge');
      const network: StoredNetwork = {
        uuid,
        name: post.name,
        mode: post.mode,
        bridge: post.bridge ?? defaultBridgeName(post.name),
        ...(post.uplink ? { uplink: post.uplink } : {}),
        ...(post.domain ? { domain: post.domain } : {}),
        ...(post.ipv4 ? { ipv4: post.ipv4 } : {}),
        ...(post.ipv6 ? { ipv6: post.ipv6 } : {}),
        dnsHosts: post.dnsHosts ?? [],
        autostart: post.autostart ?? false,
        active: false,
      };
      validateNetworkDefinition(definitionOf(network), [...this.networks.values()].map(definitionOf));
      await this.store.save(network);
      this.networks.set(network.name, network);
      await this.emit(network, 'DEFINED');
      return this.view(network);
    });
  }

  async update(name: string, put: NetworkPut): Promise<Network> {
    return this.locks.run(`net:${name}`, async () => {
      const network = this.network(name);
      const next: StoredNetwork = structuredClone(network);
      if (put.autostart !== undefined) next.autostart = put.autostart;
      if (put.ipv4Hosts !== undefined) {
        validateNetworkHosts(definitionOf(network), 4, put.ipv4Hosts);
        next.ipv4 = { ...next.ipv4!, dhcp: { ranges: next.ipv4?.dhcp?.ranges ?? [], hosts: put.ipv4Hosts } };
      }
      if (put.ipv6Hosts !== undefined) {
        validateNetworkHosts(definitionOf(network), 6, put.ipv6Hosts);
        next.ipv6 = { ...next.ipv6!, dhcp: { ranges: next.ipv6?.dhcp?.ranges ?? [], hosts: put.ipv6Hosts } };
      }
      if (put.dnsHosts !== undefined) next.dnsHosts = put.dnsHosts;
      validateNetworkDefinition(definitionOf(next), [...this.networks.values()].map(definitionOf));
      const hostsChanged = put.ipv4Hosts !== undefined || put.ipv6Hosts !== undefined || put.dnsHosts !== undefined;
      if (next.active && hostsChanged) await this.driver.reloadHosts(definitionOf(next), next.runtime ?? {});
      await this.store.save(next);
      this.networks.set(name, next);
      return this.view(next);
    });
  }

  async undefine(name: string): Promise<Network> {
    return this.locks.run(`net:${name}`, async () => {
      const network = this.network(name);
      if (network.active) throw new VirtError('OPERATION_INVALID', `network ${name} is active; stop it first`);
      const view = this.view(network);
      await this.store.remove(name);
      this.networks.delete(name);
      await this.emit(network, 'UNDEFINED');
      return view;
    });
  }

  async changeState(name: string, change: NetworkStatePut): Promise<Network> {
    return this.locks.run(`net:${name}`, async () => {
      const network = this.network(name);
      if (change.action === 'start') {
        this.assertMayChangeNetwork();
        if (network.active) throw new VirtError('OPERATION_INVALID', `network ${name} is already active`);
        const runtime = await this.driver.start(definitionOf(network));
        network.active = true;
        network.runtime = runtime;
        await this.store.save(network);
        await this.emit(network, 'STARTED');
      } else {
        if (!network.active) throw new VirtError('OPERATION_INVALID', `network ${name} is not active`);
        await this.driver.stop(definitionOf(network), network.runtime ?? {});
        network.active = false;
        delete network.runtime;
        await this.store.save(network);
        await this.emit(network, 'STOPPED');
      }
      return this.view(network);
    });
  }

  async leases(name: string): Promise<DhcpLease[]> {
    const network = this.network(name);
    if (!network.active) throw new VirtError('OPERATION_INVALID', `network ${name} is not active`);
    return this.driver.leases(definitionOf(network));
  }

  /** Leases of every active network (domifaddr looks a MAC up in all of them). */
  async allLeases(): Promise<DhcpLease[]> {
    const active = [...this.networks.values()].filter((network) => network.active);
    return (await Promise.all(active.map((network) => this.driver.leases(definitionOf(network))))).flat();
  }

  resolveNic(nic: DomainNic): NicAttachment {
    if (!nic.source) throw new VirtError('INVALID_ARG', `a ${nic.type} NIC needs a source`);
    this.assertMayChangeNetwork();
    if (nic.type === 'bridge') return { bridge: nic.source };
    const network = this.networks.get(nic.source);
    if (!network) throw new VirtError('NO_NETWORK', `no network ${nic.source}`);
    if (!network.active) throw new VirtError('OPERATION_INVALID', `network ${nic.source} is not active`);
    return { bridge: network.bridge, network: network.name };
  }

  private assertMayChangeNetwork(): void {
    if (this.options.netns === undefined && this.options.manageHostNetworks !== true) {
      throw new VirtError('OPERATION_UNSUPPORTED', 'this agent may not change the host network: run it with --netns NAME or --manage-host-networks');
    }
  }

  private network(name: string): StoredNetwork {
    const network = this.networks.get(name);
    if (!network) throw new VirtError('NO_NETWORK', `no network ${name} on node ${this.options.node}`);
    return network;
  }

  private view(network: StoredNetwork): Network {
    return {
      name: network.name,
      uuid: network.uuid,
      mode: network.mode,
      state: network.active ? 'active' : 'inactive',
      autostart: network.autostart,
      persistent: true,
      bridge: network.bridge,
      ...(network.uplink ? { uplink: network.uplink } : {}),
      ...(network.domain ? { domain: network.domain } : {}),
      ...(network.ipv4 ? { ipv4: structuredClone(network.ipv4) } : {}),
      ...(network.ipv6 ? { ipv6: structuredClone(network.ipv6) } : {}),
      dnsHosts: structuredClone(network.dnsHosts),
      ...(network.active && network.runtime?.dnsmasqPid ? { dnsmasqPid: network.runtime.dnsmasqPid } : {}),
    };
  }

  private async emit(network: StoredNetwork, type: NetworkEventType): Promise<void> {
    await this.options.events.emitNetwork(network, type, network.active ? 'active' : 'inactive');
  }
}

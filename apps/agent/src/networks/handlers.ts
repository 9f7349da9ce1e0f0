import { runningTapNics, tapName, type HypervisorDriver } from '@virtbus/drivers';
import { isActive, VirtError, type DomainInterface } from '@virtbus/api-contract';
import { stableMac } from '../domains/defaults.js';
import type { DomainManager } from '../domains/manager.js';
import { namedListPage } from '../paging.js';
import type { OperationHandlers } from '../service.js';
import type { NetworkManager } from './manager.js';

type NetworkOperationName = Extract<keyof OperationHandlers, `network.${string}` | 'domain.interfaces' | `domain.nic.${string}`>;

function nicCapability(driver: HypervisorDriver) {
  if (!driver.nics) throw new VirtError('OPERATION_UNSUPPORTED', `the ${driver.name} driver cannot change NICs of a running domain`);
  return driver.nics;
}

/** What each network contract operation does on this agent. */
export function createNetworkHandlers(networks: NetworkManager, domains: DomainManager): Pick<OperationHandlers, NetworkOperationName> {
  return {
    'network.list': async (query, context) => namedListPage('networks', networks.list(), query, context),
    'network.get': async ({ network }) => networks.get(network),
    'network.define': (post) => networks.define(post),
    'network.update': ({ network, config }) => networks.update(network, config),
    'network.undefine': ({ network }) => networks.undefine(network),
    'network.state': ({ network, change }) => networks.changeState(network, change),
    'network.leases': async ({ network }) => ({ leases: await networks.leases(network) }),
    'domain.interfaces': async ({ id }) => {
      const { config, runtime } = domains.record(id);
      const taps = runningTapNics(runtime).nics;
      const leases = await networks.allLeases();
      const interfaces: DomainInterface[] = [];
      config.nics.forEach((nic, index) => {
        if (nic.type === 'none' || !nic.mac) return;
        const mine = leases.filter((lease) => lease.mac === nic.mac && (nic.type !== 'network' || lease.network === nic.source));
        interfaces.push({
          name: taps.find((tap) => tap.mac === nic.mac)?.tap ?? (nic.type === 'network' || nic.type === 'bridge' ? tapName(config.uuid, index) : `net${index}`),
          index,
          mac: nic.mac,
          type: nic.type,
          ...(nic.type === 'network' && nic.source ? { network: nic.source } : {}),
          addresses: mine.map((lease) => ({ type: lease.type, address: lease.ip, prefix: lease.prefix })),
        });
      });
      return { source: 'lease' as const, interfaces };
    },
    'domain.nic.link': async ({ id, mac, link }) => {
      await domains.runJob(id, 'nic.link', async (record, driver) => {
        if (!isActive(record().state)) throw new VirtError('OPERATION_INVALID', `domain ${record().config.name} is not running`);
        await nicCapability(driver).setLink(record(), mac, link === 'up');
      });
      return domains.get(id);
    },
    'domain.nic.attach': async ({ id, nic }) => {
      const { config } = domains.record(id);
      const used = new Set(config.nics.map((existing) => existing.mac));
      let mac = nic.mac;
      for (let index = config.nics.length; !mac || used.has(mac); index++) mac = stableMac(config.uuid, index);
      const full = { ...nic, model: nic.model ?? 'virtio', mac };
      if (full.type === 'network') networks.resolveNic(full);
      let live = false;
      await domains.runJob(id, 'nic.attach', async (record, driver) => {
        live = isActive(record().state);
        if (live) await nicCapability(driver).attachNic(record(), full);
      });
      const domain = await domains.update(id, { nics: [...domains.record(id).config.nics, full] });
      if (live) await domains.emitDomainEvent(domain.uuid, 'DEVICE_ADDED', { device: mac });
      return domain;
    },
    'domain.nic.detach': async ({ id, mac, timeout }) => {
      if (!domains.record(id).config.nics.some((nic) => nic.mac === mac)) throw new VirtError('INVALID_ARG', `domain ${id} has no NIC with MAC ${mac}`);
      let live = false;
      await domains.runJob(id, 'nic.detach', async (record, driver) => {
        live = isActive(record().state);
        if (live) await nicCapability(driver).detachNic(record(), mac, { timeoutMs: (timeout ?? 10) * 1000 });
      });
      const domain = await domains.update(id, { nics: domains.record(id).config.nics.filter((nic) => nic.mac !== mac) });
      if (live) await domains.emitDomainEvent(domain.uuid, 'DEVICE_REMOVED', { device: mac });
      return domain;
    },
  };
}

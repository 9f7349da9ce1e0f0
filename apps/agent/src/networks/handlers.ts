import { tapName } from '@virtbus/drivers';
import type { DomainInterface } from '@virtbus/api-contract';
import type { DomainManager } from '../domains/manager.js';
import type { OperationHandlers } from '../service.js';
import type { NetworkManager } from './manager.js';

type NetworkOperationName = Extract<keyof OperationHandlers, `network.${string}` | 'domain.interfaces'>;

/** What each network contract operation does on this agent. */
export function createNetworkHandlers(networks: NetworkManager, domains: DomainManager): Pick<OperationHandlers, NetworkOperationName> {
  return {
    'network.list': async () => ({ networks: networks.list() }),
    'network.get': async ({ network }) => networks.get(network),
    'network.define': (post) => networks.define(post),
    'network.update': ({ network, config }) => networks.update(network, config),
    'network.undefine': ({ network }) => networks.undefine(network),
    'network.state': ({ network, change }) => networks.changeState(network, change),
    'network.leases': async ({ network }) => ({ leases: await networks.leases(network) }),
    'domain.interfaces': async ({ id }) => {
      const { config } = domains.record(id);
      const leases = await networks.allLeases();
      const interfaces: DomainInterface[] = [];
      config.nics.forEach((nic, index) => {
        if (nic.type === 'none' || !nic.mac) return;
        const mine = leases.filter((lease) => lease.mac === nic.mac && (nic.type !== 'network' || lease.network === nic.source));
        interfaces.push({
          name: nic.type === 'network' || nic.type === 'bridge' ? tapName(config.uuid, index) : `net${index}`,
          index,
          mac: nic.mac,
          type: nic.type,
          ...(nic.type === 'network' && nic.source ? { network: nic.source } : {}),
          addresses: mine.map((lease) => ({ type: lease.type, address: lease.ip, prefix: lease.prefix })),
        });
      });
      return { source: 'lease' as const, interfaces };
    },
  };
}

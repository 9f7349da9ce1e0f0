import { namedListPage } from '../paging.js';
import type { OperationHandlers } from '../service.js';
import type { FirewallManager } from './manager.js';

type FirewallOperationName = Extract<keyof OperationHandlers, `firewall.${string}`>;

/** What each firewall contract operation does on this agent. */
export function createFirewallHandlers(firewall: FirewallManager): Pick<OperationHandlers, FirewallOperationName> {
  return {
    // reads wait for queued firewall work: a binding a lifecycle event (sent before its call's answer) changes shows changed
    'firewall.ruleset.list': async (query, context) => {
      await firewall.idle();
      return namedListPage('ruleSets', firewall.list(), query, context);
    },
    'firewall.ruleset.get': async ({ name }) => {
      await firewall.idle();
      return firewall.get(name);
    },
    'firewall.ruleset.define': (post) => firewall.define(post),
    'firewall.ruleset.update': ({ name, ruleSet }) => firewall.update(name, ruleSet),
    'firewall.ruleset.delete': ({ name }) => firewall.delete(name),
  };
}

type NicHotplug = Pick<OperationHandlers, 'domain.nic.attach' | 'domain.nic.detach'>;

/** A hotplugged NIC gets its rule set at once and an unplugged one loses it: hotplug publishes no lifecycle event. */
export function withFirewallSync<H extends NicHotplug>(handlers: H, firewall: FirewallManager): H {
  return {
    ...handlers,
    'domain.nic.attach': async (request, context) => {
      const domain = await handlers['domain.nic.attach'](request, context);
      await firewall.sync(domain.uuid);
      return domain;
    },
    'domain.nic.detach': async (request, context) => {
      const domain = await handlers['domain.nic.detach'](request, context);
      await firewall.sync(domain.uuid);
      return domain;
    },
  };
}

import type { OperationHandlers } from '../service.js';
import type { FirewallManager } from './manager.js';

type FirewallOperationName = Extract<keyof OperationHandlers, `firewall.${string}`>;

/** What each firewall contract operation does on this agent. */
export function createFirewallHandlers(firewall: FirewallManager): Pick<OperationHandlers, FirewallOperationName> {
  return {
    'firewall.ruleset.list': async () => ({ ruleSets: firewall.list() }),
    'firewall.ruleset.get': async ({ name }) => firewall.get(name),
    'firewall.ruleset.define': (post) => firewall.define(post),
    'firewall.ruleset.update': ({ name, ruleSet }) => firewall.update(name, ruleSet),
    'firewall.ruleset.delete': ({ name }) => firewall.delete(name),
  };
}

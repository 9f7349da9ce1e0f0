import { describe, expect, it } from 'vitest';
import { StateDir } from './state-dir.js';

describe('StateDir', () => {
  it('keeps the on-disk layout agents already wrote', () => {
    const root = '/var/lib/virtbus/n1';
    expect({
      domains: StateDir.domains(root),
      cleanStop: StateDir.cleanStop(root),
      driver: StateDir.driver(root, 'qemu'),
      migrations: StateDir.migrations(root),
      snapshots: StateDir.snapshots(root),
      managedSave: StateDir.managedSave(root),
      interfacesTransaction: StateDir.interfacesTransaction(root),
      firewallRulesets: StateDir.firewallRulesets(root),
      firewallBindings: StateDir.firewallBindings(root),
      storagePools: StateDir.storagePools(root),
      poolTarget: StateDir.poolTarget(root, 'default'),
      networks: StateDir.networks(root),
      events: StateDir.events(root),
      idempotency: StateDir.idempotency(root),
      nvram: StateDir.nvram(root),
    }).toEqual({
      domains: `${root}/domains`,
      cleanStop: `${root}/clean-stop`,
      driver: `${root}/drivers/qemu`,
      migrations: `${root}/migrations`,
      snapshots: `${root}/snapshots`,
      managedSave: `${root}/managed-save`,
      interfacesTransaction: `${root}/interfaces/transaction.json`,
      firewallRulesets: `${root}/firewall/rulesets`,
      firewallBindings: `${root}/firewall/bindings.json`,
      storagePools: `${root}/storage-pools`,
      poolTarget: `${root}/pools/default`,
      networks: `${root}/networks`,
      events: `${root}/events`,
      idempotency: `${root}/idempotency`,
      nvram: `${root}/nvram`,
    });
  });
});

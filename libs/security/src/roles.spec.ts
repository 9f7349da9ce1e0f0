import { describe, expect, it } from 'vitest';
import { OperationNames, Operations } from '@virtbus/api-contract';
import { MinimumRole, Role, Roles, isRole, minimumRoleFor, roleAtLeast } from './roles.js';

describe('roles', () => {
  it('orders read-only < operator < admin', () => {
    expect(roleAtLeast(Role.Admin, Role.Operator)).toBe(true);
    expect(roleAtLeast(Role.Operator, Role.Operator)).toBe(true);
    expect(roleAtLeast(Role.ReadOnly, Role.Operator)).toBe(false);
    expect(roleAtLeast(Role.Operator, Role.Admin)).toBe(false);
  });

  it('follows the issue: read-only reads, operator runs and consoles, admin defines', () => {
    expect(minimumRoleFor('domain.list')).toBe('read-only');
    expect(minimumRoleFor('domain.stats')).toBe('read-only');
    expect(minimumRoleFor('domain.state.get')).toBe('read-only');
    expect(minimumRoleFor('events')).toBe('read-only');
    expect(minimumRoleFor('domain.state')).toBe('operator');
    expect(minimumRoleFor('domain.console.attach')).toBe('operator');
    expect(minimumRoleFor('domain.define')).toBe('admin');
    expect(minimumRoleFor('domain.qemu.monitor')).toBe('admin');
    expect(minimumRoleFor('domain.lxc.enter')).toBe('admin');
    expect(minimumRoleFor('storage')).toBe('admin');
    expect(MinimumRole['host-interface']).toBe('admin');
  });

  it('gives every contract operation a role from its entry, and peer verbs none', () => {
    for (const name of OperationNames) {
      if (Operations[name].access === 'peer') expect([name, minimumRoleFor(name)]).toEqual([name, null]);
      else expect(Roles).toContain(minimumRoleFor(name));
    }
  });

  it('lets no user role call a peer verb', () => {
    expect(minimumRoleFor('migration.prepare')).toBeNull();
    for (const role of Roles) expect(roleAtLeast(role, minimumRoleFor('peer'))).toBe(false);
  });

  it('recognises role names', () => {
    expect(isRole('operator')).toBe(true);
    expect(isRole('root')).toBe(false);
    expect(isRole(undefined)).toBe(false);
  });
});

import { CallerRoles, Operations, PermissionClass, type OperationName, type OperationSpec } from '@virtbus/api-contract';

export { PermissionClass };

/** HTTP roles, weakest first; each includes everything the weaker ones may do. */
export const Role = { ReadOnly: 'read-only', Operator: 'operator', Admin: 'admin' } as const;
export type Role = (typeof Role)[keyof typeof Role];
export const Roles: readonly Role[] = CallerRoles;

const rank: Record<Role, number> = { 'read-only': 0, operator: 1, admin: 2 };

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && Object.hasOwn(rank, value);
}

/** Whether `role` is at least `minimum`; no user role reaches null (agents only). */
export function roleAtLeast(role: Role, minimum: Role | null): boolean {
  return minimum !== null && rank[role] >= rank[minimum];
}

/**
 * The minimum role per permission class: read-only is libvirt's ro socket, operator runs and watches, admin changes
 * configuration; peer verbs have none (null): only agents' bus identities may send them (nats-permissions.ts).
 */
export const MinimumRole = {
  read: Role.ReadOnly,
  events: Role.ReadOnly,
  lifecycle: Role.Operator,
  console: Role.Operator,
  define: Role.Admin,
  storage: Role.Admin,
  network: Role.Admin,
  'host-interface': Role.Admin,
  audit: Role.Admin,
  peer: null,
  hypervisor: Role.Admin,
} as const satisfies Record<PermissionClass, Role | null>;

export function minimumRoleFor(what: PermissionClass | OperationName): Role | null {
  // each operation's class is in its contract entry
  const permission = Object.hasOwn(Operations, what) ? (Operations[what as OperationName] as OperationSpec).permission : (what as PermissionClass);
  return MinimumRole[permission];
}

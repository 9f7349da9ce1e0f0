import type { OperationName } from '@virtbus/api-contract';

/** HTTP roles, weakest first; each includes everything the weaker ones may do. */
export const Role = { ReadOnly: 'read-only', Operator: 'operator', Admin: 'admin' } as const;
export type Role = (typeof Role)[keyof typeof Role];
export const Roles: readonly Role[] = [Role.ReadOnly, Role.Operator, Role.Admin];

const rank: Record<Role, number> = { 'read-only': 0, operator: 1, admin: 2 };

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && Object.hasOwn(rank, value);
}

/** Whether `role` is at least `minimum`. */
export function roleAtLeast(role: Role, minimum: Role): boolean {
  return rank[role] >= rank[minimum];
}

/** What a caller does, grouped the way libvirt's ro/rw sockets and ACLs group it. */
export const PermissionClass = {
  Read: 'read',
  Events: 'events',
  Lifecycle: 'lifecycle',
  Console: 'console',
  Define: 'define',
  Storage: 'storage',
  Network: 'network',
  HostInterface: 'host-interface',
  Audit: 'audit',
} as const;
export type PermissionClass = (typeof PermissionClass)[keyof typeof PermissionClass];

/** The minimum role per permission class: read-only is libvirt's ro socket, operator runs and watches, admin changes configuration. */
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
} as const satisfies Record<PermissionClass, Role>;

/** Every agent operation must be classified; a new operation without a class fails to compile. */
export const OperationPermission = {
  'node.info': PermissionClass.Read,
  'domain.list': PermissionClass.Read,
  'domain.get': PermissionClass.Read,
  'domain.stats': PermissionClass.Read,
  'domain.stats.all': PermissionClass.Read,
  'node.stats': PermissionClass.Read,
  'domain.define': PermissionClass.Define,
  'domain.update': PermissionClass.Define,
  'domain.undefine': PermissionClass.Define,
  // moves a definition onto another node (and may remove it here)
  'domain.migrate': PermissionClass.Define,
  // lets a migration define a domain on this node
  'migration.accept': PermissionClass.Define,
  'domain.state': PermissionClass.Lifecycle,
  // disks and media change what the guest can read and write, like a definition change
  'domain.disk.attach': PermissionClass.Define,
  // creates volumes too, but what it makes is a domain definition
  'domain.define.image': PermissionClass.Define,
  'domain.disk.detach': PermissionClass.Define,
  'domain.media.change': PermissionClass.Define,
  // a guest command is as powerful as a console login
  'domain.exec': PermissionClass.Console,
  'domain.console.read': PermissionClass.Console,
  'domain.console.attach': PermissionClass.Console,
  'domain.console.write': PermissionClass.Console,
  'domain.console.detach': PermissionClass.Console,
  'pool.list': PermissionClass.Read,
  'pool.get': PermissionClass.Read,
  'volume.list': PermissionClass.Read,
  'volume.get': PermissionClass.Read,
  'operation.list': PermissionClass.Read,
  'operation.get': PermissionClass.Read,
  'pool.define': PermissionClass.Storage,
  'pool.update': PermissionClass.Storage,
  'pool.undefine': PermissionClass.Storage,
  'pool.state': PermissionClass.Storage,
  'volume.create': PermissionClass.Storage,
  'volume.delete': PermissionClass.Storage,
  'volume.resize': PermissionClass.Storage,
  'volume.clone': PermissionClass.Storage,
  'volume.wipe': PermissionClass.Storage,
  'volume.upload': PermissionClass.Storage,
  // disk contents may hold secrets: reading them needs the storage role
  'volume.download': PermissionClass.Storage,
  'operation.cancel': PermissionClass.Storage,
  'network.list': PermissionClass.Read,
  'network.get': PermissionClass.Read,
  'network.leases': PermissionClass.Read,
  'domain.interfaces': PermissionClass.Read,
  'network.define': PermissionClass.Network,
  'network.update': PermissionClass.Network,
  'network.undefine': PermissionClass.Network,
  'network.state': PermissionClass.Network,
  // a NIC's link is run-time state, like start and stop
  'domain.nic.link': PermissionClass.Lifecycle,
  'domain.nic.attach': PermissionClass.Define,
  'domain.nic.detach': PermissionClass.Define,
  'iface.list': PermissionClass.Read,
  'iface.get': PermissionClass.Read,
  'iface.transaction': PermissionClass.Read,
  'iface.begin': PermissionClass.HostInterface,
  'iface.commit': PermissionClass.HostInterface,
  'iface.rollback': PermissionClass.HostInterface,
  'iface.configure': PermissionClass.HostInterface,
  'domain.snapshot.list': PermissionClass.Read,
  'domain.snapshot.get': PermissionClass.Read,
  'domain.managedsave.get': PermissionClass.Read,
  'domain.snapshot.create': PermissionClass.Lifecycle,
  'domain.save': PermissionClass.Lifecycle,
  'domain.restore': PermissionClass.Lifecycle,
  'domain.managedsave': PermissionClass.Lifecycle,
  // these throw guest state away: admin only
  'domain.snapshot.revert': PermissionClass.Define,
  'domain.snapshot.delete': PermissionClass.Define,
  'domain.managedsave.remove': PermissionClass.Define,
  'firewall.ruleset.list': PermissionClass.Read,
  'firewall.ruleset.get': PermissionClass.Read,
  'firewall.ruleset.define': PermissionClass.Network,
  'firewall.ruleset.update': PermissionClass.Network,
  'firewall.ruleset.delete': PermissionClass.Network,
} as const satisfies Record<OperationName, PermissionClass>;

export function minimumRoleFor(what: PermissionClass | OperationName): Role {
  const permission = (Object.hasOwn(OperationPermission, what) ? OperationPermission[what as OperationName] : what) as PermissionClass;
  return MinimumRole[permission];
}

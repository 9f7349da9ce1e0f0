import Type, { type Static } from 'typebox';
import { Count } from './names.js';
import { Access } from './subjects.js';
import { HttpTags, PermissionClass, type OperationSpec } from './operation-spec.js';
import { namedListOperation, PageResponseFields } from './paging.js';

/** Linux interface names: at most 15 bytes (IFNAMSIZ - 1), no `/`, `:`, spaces; never `.` or `..`. */
export const IFACE_NAME_PATTERN = '^(?!\\.{1,2}$)[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$';
export const HostInterfaceName = Type.String({ pattern: IFACE_NAME_PATTERN, minLength: 1, maxLength: 15, description: 'Host interface name (1-15 characters)' });

/** An address with its prefix length, IPv4 or IPv6, e.g. `192.0.2.1/24` or `2001:db8::1/64`. */
export const InterfaceAddressCidr = Type.String({ pattern: '^[0-9A-Fa-f.:]{2,45}/[0-9]{1,3}$', maxLength: 49, description: 'Address/prefix, IPv4 or IPv6' });

export const HostInterfaceKinds = ['loopback', 'ethernet', 'bridge', 'vlan', 'veth', 'tun', 'bond', 'dummy', 'other'] as const;
export const HostInterfaceKind = Type.Enum([...HostInterfaceKinds]);
export type HostInterfaceKind = Static<typeof HostInterfaceKind>;

export const HostInterfaceAddress = Type.Object(
  {
    family: Type.Enum(['inet', 'inet6']),
    address: Type.String(),
    prefix: Type.Integer({ minimum: 0, maximum: 128 }),
    scope: Type.String({ description: 'global, link, host…' }),
    broadcast: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export type HostInterfaceAddress = Static<typeof HostInterfaceAddress>;

export const HostInterfaceStats = Type.Object(
  {
    rxBytes: Count,
    rxPackets: Count,
    rxErrors: Count,
    rxDropped: Count,
    txBytes: Count,
    txPackets: Count,
    txErrors: Count,
    txDropped: Count,
  },
  { additionalProperties: false },
);
export type HostInterfaceStats = Static<typeof HostInterfaceStats>;

export const HostInterface = Type.Object(
  {
    name: Type.String(),
    index: Count,
    kind: HostInterfaceKind,
    adminUp: Type.Boolean({ description: 'Administratively up (`ip link set … up`)' }),
    state: Type.String({ description: 'Operational state from the kernel: UP, DOWN, UNKNOWN, LOWERLAYERDOWN…' }),
    mtu: Count,
    mac: Type.Optional(Type.String()),
    addresses: Type.Array(HostInterfaceAddress),
    stats: Type.Optional(HostInterfaceStats),
    master: Type.Optional(Type.String({ description: 'The bridge (or bond) this interface is a port of' })),
    members: Type.Optional(Type.Array(Type.String(), { description: 'Bridge: its ports' })),
    vlan: Type.Optional(Type.Object({ id: Type.Integer(), parent: Type.String() }, { additionalProperties: false })),
  },
  { additionalProperties: false, title: 'HostInterface' },
);
export type HostInterface = Static<typeof HostInterface>;

export const HostInterfaceTransaction = Type.Object(
  {
    id: Type.String(),
    startedAt: Type.String({ format: 'date-time' }),
    expiresAt: Type.String({ format: 'date-time', description: 'Rolled back automatically at this time unless committed' }),
    changes: Type.Integer({ minimum: 0, description: 'Changes applied since begin' }),
  },
  { additionalProperties: false, title: 'HostInterfaceTransaction' },
);
export type HostInterfaceTransaction = Static<typeof HostInterfaceTransaction>;

export const HostInterfaceList = Type.Object(
  { interfaces: Type.Array(HostInterface), transaction: Type.Optional(HostInterfaceTransaction), ...PageResponseFields },
  { additionalProperties: false, title: 'HostInterfaceList' },
);
export type HostInterfaceList = Static<typeof HostInterfaceList>;

const Mtu = Type.Integer({ minimum: 68, maximum: 65535 });

/** One configuration step; a list of them applies in order, all or nothing. */
export const HostInterfaceChange = Type.Union(
  [
    Type.Object(
      {
        action: Type.Literal('set'),
        name: HostInterfaceName,
        up: Type.Optional(Type.Boolean()),
        mtu: Type.Optional(Mtu),
        master: Type.Optional(Type.Union([HostInterfaceName, Type.Null()], { description: 'Bridge to join; null leaves the current one' })),
      },
      { additionalProperties: false },
    ),
    Type.Object({ action: Type.Literal('add-address'), name: HostInterfaceName, address: InterfaceAddressCidr }, { additionalProperties: false }),
    Type.Object({ action: Type.Literal('remove-address'), name: HostInterfaceName, address: InterfaceAddressCidr }, { additionalProperties: false }),
    Type.Object(
      { action: Type.Literal('create-bridge'), name: HostInterfaceName, mtu: Type.Optional(Mtu), up: Type.Optional(Type.Boolean()) },
      { additionalProperties: false },
    ),
    Type.Object(
      {
        action: Type.Literal('create-vlan'),
        name: HostInterfaceName,
        parent: HostInterfaceName,
        vlanId: Type.Integer({ minimum: 1, maximum: 4094 }),
        mtu: Type.Optional(Mtu),
        up: Type.Optional(Type.Boolean()),
      },
      { additionalProperties: false },
    ),
    Type.Object({ action: Type.Literal('delete'), name: HostInterfaceName }, { additionalProperties: false, description: 'Only bridges and VLANs can be deleted' }),
  ],
  { description: 'set (up/down, MTU, bridge master), add-address, remove-address, create-bridge, create-vlan, delete' },
);
export type HostInterfaceChange = Static<typeof HostInterfaceChange>;

export const HostInterfaceChanges = Type.Object(
  { changes: Type.Array(HostInterfaceChange, { minItems: 1, maxItems: 64 }) },
  { additionalProperties: false, title: 'HostInterfaceChanges' },
);
export type HostInterfaceChanges = Static<typeof HostInterfaceChanges>;

export const HostInterfaceBegin = Type.Object(
  { timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400, description: 'Automatic rollback after this long (default 600)' })) },
  { additionalProperties: false, title: 'HostInterfaceBegin' },
);
export type HostInterfaceBegin = Static<typeof HostInterfaceBegin>;

export const HostInterfaceRef = Type.Object({ name: HostInterfaceName }, { additionalProperties: false });
const NoBody = Type.Object({}, { additionalProperties: false });

export const HostInterfaceOperations = {
  'iface.list': namedListOperation('HostInterfaceListRequest', HostInterfaceList, 'Host interfaces: state, MTU, MAC, addresses, stats, bridge membership, and the open transaction', { path: '/interfaces', operationId: 'listHostInterfaces', tag: HttpTags.Interfaces }),
  'iface.get': {
    access: Access.ReadOnly,
    request: HostInterfaceRef,
    response: HostInterface,
    summary: 'One host interface',
    permission: PermissionClass.Read,
    errors: ['NOT_FOUND'],
    http: { method: 'GET', path: '/interfaces/:name', operationId: 'getHostInterface', tag: HttpTags.Interfaces },
  },
  'iface.transaction': {
    access: Access.ReadOnly,
    request: NoBody,
    response: HostInterfaceList,
    summary: 'The open transaction with the current interfaces (OPERATION_INVALID when none is open)',
    permission: PermissionClass.Read,
    errors: ['OPERATION_INVALID'],
    http: { method: 'GET', path: '/interfaces/transaction', operationId: 'getHostInterfaceTransaction', tag: HttpTags.Interfaces },
  },
  'iface.begin': {
    access: Access.ReadWrite,
    request: HostInterfaceBegin,
    response: HostInterfaceTransaction,
    summary: 'Snapshot the interface configuration (iface-begin); rolled back automatically unless committed in time',
    permission: PermissionClass.HostInterface,
    errors: ['OPERATION_INVALID'],
    http: { method: 'POST', path: '/interfaces/transaction', operationId: 'beginHostInterfaceTransaction', tag: HttpTags.Interfaces, status: 201, body: true },
  },
  'iface.commit': {
    access: Access.ReadWrite,
    request: NoBody,
    response: HostInterfaceTransaction,
    summary: 'Keep the changes made since begin (iface-commit)',
    permission: PermissionClass.HostInterface,
    errors: ['OPERATION_INVALID'],
    http: { method: 'POST', path: '/interfaces/transaction/commit', operationId: 'commitHostInterfaceTransaction', tag: HttpTags.Interfaces },
  },
  'iface.rollback': {
    access: Access.ReadWrite,
    request: NoBody,
    response: HostInterfaceTransaction,
    summary: 'Restore the configuration of begin (iface-rollback)',
    permission: PermissionClass.HostInterface,
    errors: ['OPERATION_INVALID'],
    http: { method: 'POST', path: '/interfaces/transaction/rollback', operationId: 'rollbackHostInterfaceTransaction', tag: HttpTags.Interfaces },
    wait: { seconds: 60 },
  },
  'iface.configure': {
    access: Access.ReadWrite,
    request: HostInterfaceChanges,
    response: HostInterfaceList,
    summary: 'Apply changes live in order, all or nothing (up/down, MTU, master, addresses, create/delete bridge or VLAN)',
    permission: PermissionClass.HostInterface,
    errors: ['OPERATION_INVALID', 'PAYLOAD_TOO_LARGE', 'OPERATION_UNSUPPORTED'],
    http: { method: 'POST', path: '/interfaces/changes', operationId: 'configureHostInterfaces', tag: HttpTags.Interfaces, body: true },
    wait: { seconds: 60 },
  },
} as const satisfies Record<string, OperationSpec>;

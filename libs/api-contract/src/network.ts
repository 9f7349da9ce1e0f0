import Type, { type Static } from 'typebox';
import { eventHeaderFields } from './event-header.js';
import { Access } from './subjects.js';
import { HttpTags, ObjectErrors, PermissionClass, type OperationSpec } from './operation-spec.js';
import { Domain, DomainNic, MacAddress } from './domain.js';
import { DomainId, ObjectName, Uuid } from './names.js';
import { namedListOperation, PageResponseFields } from './paging.js';

/** isolated: no uplink; nat: masquerade out of the node; routed: forwarded without NAT; bridge: an existing host bridge. */
export const NetworkModes = ['isolated', 'nat', 'routed', 'bridge'] as const;
export const NetworkMode = Type.Enum([...NetworkModes], { description: "libvirt's forward mode (none, nat, route, bridge)" });
export type NetworkMode = Static<typeof NetworkMode>;

export const NetworkStates = ['inactive', 'active'] as const;
export const NetworkState = Type.Enum([...NetworkStates]);
export type NetworkState = Static<typeof NetworkState>;

/** Linux limits interface names to 15 bytes (IFNAMSIZ - 1). */
export const IFNAME_MAX = 15;
export const InterfaceName = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$',
  minLength: 1,
  maxLength: 64,
  description: `Linux interface name (at most ${IFNAME_MAX} characters; longer names are refused with INVALID_ARG)`,
});

const IpText = Type.String({ minLength: 2, maxLength: 45, pattern: '^[0-9A-Fa-f:.]+$', description: 'IPv4 or IPv6 address' });
const CidrText = Type.String({ minLength: 4, maxLength: 49, pattern: '^[0-9A-Fa-f:.]+/[0-9]{1,3}$', description: 'Address with prefix, e.g. 192.168.100.1/24' });
const HostName = Type.String({ pattern: '^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$', maxLength: 253 });

export const DhcpRange = Type.Object({ start: IpText, end: IpText }, { additionalProperties: false });
export type DhcpRange = Static<typeof DhcpRange>;

export const DhcpHost = Type.Object(
  { mac: MacAddress, ip: IpText, name: Type.Optional(HostName) },
  { additionalProperties: false, description: 'A static lease: this MAC always gets this address' },
);
export type DhcpHost = Static<typeof DhcpHost>;

export const NetworkIp = Type.Object(
  {
    address: Type.String({ ...CidrText, description: "The bridge's (gateway's) address with the subnet prefix, e.g. 192.168.100.1/24 or fd00:100::1/64" }),
    dhcp: Type.Optional(
      Type.Object(
        {
          ranges: Type.Array(DhcpRange, { maxItems: 16 }),
          hosts: Type.Optional(Type.Array(DhcpHost, { maxItems: 4096 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type NetworkIp = Static<typeof NetworkIp>;

export const DnsHost = Type.Object(
  { ip: IpText, hostnames: Type.Array(HostName, { minItems: 1, maxItems: 16 }) },
  { additionalProperties: false, description: 'A DNS host record served by the network' },
);
export type DnsHost = Static<typeof DnsHost>;

export const NetworksPost = Type.Object(
  {
    name: ObjectName,
    uuid: Type.Optional(Uuid),
    mode: NetworkMode,
    bridge: Type.Optional(Type.String({ ...InterfaceName, description: 'Bridge name (default vb-<name>, shortened); bridge mode: the existing bridge' })),
    uplink: Type.Optional(Type.String({ ...InterfaceName, description: 'nat/routed: only forward out of this interface (default: any)' })),
    domain: Type.Optional(Type.String({ ...HostName, description: 'DNS domain of the network' })),
    ipv4: Type.Optional(NetworkIp),
    ipv6: Type.Optional(NetworkIp),
    dnsHosts: Type.Optional(Type.Array(DnsHost, { maxItems: 1024 })),
    autostart: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, title: 'NetworksPost', description: 'Define a virtual network (inactive)' },
);
export type NetworksPost = Static<typeof NetworksPost>;

export const NetworkPut = Type.Object(
  {
    autostart: Type.Optional(Type.Boolean()),
    ipv4Hosts: Type.Optional(Type.Array(DhcpHost, { maxItems: 4096, description: 'Replaces the IPv4 static hosts; applied live (net-update)' })),
    ipv6Hosts: Type.Optional(Type.Array(DhcpHost, { maxItems: 4096, description: 'Replaces the IPv6 static hosts; applied live' })),
    dnsHosts: Type.Optional(Type.Array(DnsHost, { maxItems: 1024, description: 'Replaces the DNS host records; applied live' })),
  },
  { additionalProperties: false, title: 'NetworkPut' },
);
export type NetworkPut = Static<typeof NetworkPut>;

export const NetworkActions = ['start', 'stop'] as const;
export const NetworkStatePut = Type.Object({ action: Type.Enum([...NetworkActions]) }, { additionalProperties: false, title: 'NetworkStatePut' });
export type NetworkStatePut = Static<typeof NetworkStatePut>;

export const Network = Type.Object(
  {
    name: ObjectName,
    uuid: Uuid,
    mode: NetworkMode,
    state: NetworkState,
    autostart: Type.Boolean(),
    persistent: Type.Boolean(),
    bridge: Type.String({ description: 'The Linux bridge guests attach to' }),
    uplink: Type.Optional(Type.String()),
    domain: Type.Optional(Type.String()),
    ipv4: Type.Optional(NetworkIp),
    ipv6: Type.Optional(NetworkIp),
    dnsHosts: Type.Array(DnsHost),
    dnsmasqPid: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false, title: 'Network' },
);
export type Network = Static<typeof Network>;
export const NetworkList = Type.Object({ networks: Type.Array(Network), ...PageResponseFields }, { additionalProperties: false, title: 'NetworkList' });
export type NetworkList = Static<typeof NetworkList>;

export const DhcpLease = Type.Object(
  {
    network: ObjectName,
    type: Type.Enum(['ipv4', 'ipv6']),
    mac: Type.Optional(MacAddress),
    ip: Type.String(),
    prefix: Type.Integer({ minimum: 0, maximum: 128 }),
    hostname: Type.Optional(Type.String()),
    clientId: Type.Optional(Type.String()),
    expiresAt: Type.Optional(Type.String({ format: 'date-time', description: 'Absent for infinite leases' })),
  },
  { additionalProperties: false, title: 'DhcpLease' },
);
export type DhcpLease = Static<typeof DhcpLease>;
export const DhcpLeaseList = Type.Object({ leases: Type.Array(DhcpLease) }, { additionalProperties: false, title: 'DhcpLeaseList' });
export type DhcpLeaseList = Static<typeof DhcpLeaseList>;

export const InterfaceAddress = Type.Object(
  { type: Type.Enum(['ipv4', 'ipv6']), address: Type.String(), prefix: Type.Integer({ minimum: 0, maximum: 128 }) },
  { additionalProperties: false },
);
export const DomainInterface = Type.Object(
  {
    name: Type.String({ description: 'Host-side device (the tap) when known, else net<index>' }),
    index: Type.Integer({ minimum: 0 }),
    mac: MacAddress,
    type: Type.String(),
    network: Type.Optional(ObjectName),
    addresses: Type.Array(InterfaceAddress),
  },
  { additionalProperties: false, title: 'DomainInterface' },
);
export type DomainInterface = Static<typeof DomainInterface>;
export const DomainInterfaceList = Type.Object(
  { source: Type.Literal('lease'), interfaces: Type.Array(DomainInterface) },
  { additionalProperties: false, title: 'DomainInterfaceList', description: "libvirt's domifaddr --source lease" },
);
export type DomainInterfaceList = Static<typeof DomainInterfaceList>;

/** libvirt's virNetworkEventLifecycleType. */
export const NetworkEventTypes = ['DEFINED', 'UNDEFINED', 'STARTED', 'STOPPED'] as const;
export const NetworkEventType = Type.Enum([...NetworkEventTypes]);
export type NetworkEventType = Static<typeof NetworkEventType>;

export const NetworkEvent = Type.Object(
  {
    ...eventHeaderFields('network.lifecycle', 'Per-node sequence number shared with domain and pool events'),
    name: ObjectName,
    type: NetworkEventType,
    state: NetworkState,
  },
  { additionalProperties: false, title: 'NetworkEvent' },
);
export type NetworkEvent = Static<typeof NetworkEvent>;

const NetworkRef = Type.Object({ network: ObjectName }, { additionalProperties: false });

/** Network operations of the agent API, merged into `Operations` (api.ts). */
export const NetworkOperations = {
  'network.list': namedListOperation('NetworkListRequest', NetworkList, 'Virtual networks of the node in name order (paged with limit/continue)', { path: '/networks', operationId: 'listNetworks', tag: HttpTags.Networks }),
  'network.get': {
    access: Access.ReadOnly,
    request: NetworkRef,
    response: Network,
    summary: 'One virtual network',
    permission: PermissionClass.Read,
    errors: ObjectErrors.network,
    http: { method: 'GET', path: '/networks/:network', operationId: 'getNetwork', tag: HttpTags.Networks },
  },
  'network.define': {
    access: Access.ReadWrite,
    request: NetworksPost,
    response: Network,
    summary: 'Define a virtual network (inactive until started)',
    permission: PermissionClass.Network,
    errors: ['NETWORK_EXISTS', 'PAYLOAD_TOO_LARGE'],
    http: { method: 'POST', path: '/networks', operationId: 'defineNetwork', tag: HttpTags.Networks, status: 201, body: true },
  },
  'network.update': {
    access: Access.ReadWrite,
    request: Type.Object({ network: ObjectName, config: NetworkPut }, { additionalProperties: false }),
    response: Network,
    summary: 'Change autostart, static DHCP hosts and DNS hosts; host changes apply live on an active network',
    permission: PermissionClass.Network,
    errors: ObjectErrors.network,
    http: { method: 'PUT', path: '/networks/:network', operationId: 'updateNetwork', tag: HttpTags.Networks, body: 'config' },
  },
  'network.undefine': {
    access: Access.ReadWrite,
    request: NetworkRef,
    response: Network,
    summary: 'Remove an inactive network definition',
    permission: PermissionClass.Network,
    errors: ObjectErrors.network,
    http: { method: 'DELETE', path: '/networks/:network', operationId: 'undefineNetwork', tag: HttpTags.Networks },
  },
  'network.state': {
    access: Access.ReadWrite,
    request: Type.Object({ network: ObjectName, change: NetworkStatePut }, { additionalProperties: false }),
    response: Network,
    summary: 'Start (bridge, dnsmasq, nftables) or stop (all removed) a network',
    permission: PermissionClass.Network,
    errors: ObjectErrors.network,
    http: { method: 'PUT', path: '/networks/:network/state', operationId: 'changeNetworkState', tag: HttpTags.Networks, body: 'change' },
    wait: { seconds: 60 },
  },
  'network.leases': {
    access: Access.ReadOnly,
    request: NetworkRef,
    response: DhcpLeaseList,
    summary: 'DHCP leases of an active network',
    permission: PermissionClass.Read,
    errors: ObjectErrors.network,
    http: { method: 'GET', path: '/networks/:network/leases', operationId: 'listNetworkLeases', tag: HttpTags.Networks },
  },
  'domain.interfaces': {
    access: Access.ReadOnly,
    request: Type.Object({ id: DomainId }, { additionalProperties: false }),
    response: DomainInterfaceList,
    summary: "A domain's NICs with their addresses from DHCP leases (domifaddr --source lease)",
    permission: PermissionClass.Read,
    errors: ObjectErrors.domain,
    http: { method: 'GET', path: '/domains/:id/interfaces', operationId: 'listDomainInterfaces', tag: HttpTags.Networks },
  },
  // a NIC's link is run-time state, like start and stop
  'domain.nic.link': {
    access: Access.ReadWrite,
    request: Type.Object({ id: DomainId, mac: MacAddress, link: Type.Enum(['up', 'down']) }, { additionalProperties: false }),
    response: Domain,
    summary: "Set a running domain's NIC link up or down (domif-setlink)",
    permission: PermissionClass.Lifecycle,
    errors: ObjectErrors.domain,
    http: { method: 'PUT', path: '/domains/:id/interfaces/:mac/link', operationId: 'setDomainInterfaceLink', tag: HttpTags.Networks, body: true },
  },
  'domain.nic.attach': {
    access: Access.ReadWrite,
    request: Type.Object({ id: DomainId, nic: DomainNic }, { additionalProperties: false }),
    response: Domain,
    summary: 'Add a NIC: hotplugged when the domain runs, and kept in its definition',
    permission: PermissionClass.Define,
    errors: ['NO_DOMAIN', 'NO_NETWORK', 'OPERATION_INVALID', 'OPERATION_UNSUPPORTED'],
    http: { method: 'POST', path: '/domains/:id/interfaces', operationId: 'attachDomainInterface', tag: HttpTags.Networks, body: 'nic' },
    wait: { seconds: 30 },
  },
  'domain.nic.detach': {
    access: Access.ReadWrite,
    request: Type.Object(
      { id: DomainId, mac: MacAddress, timeout: Type.Optional(Type.Integer({ minimum: 1, maximum: 600, description: 'Seconds to wait for the guest to release it (default 10)' })) },
      { additionalProperties: false },
    ),
    response: Domain,
    summary: 'Remove a NIC: unplugged when the domain runs (waits for the guest), and from its definition',
    permission: PermissionClass.Define,
    errors: ObjectErrors.domain,
    http: { method: 'DELETE', path: '/domains/:id/interfaces/:mac', operationId: 'detachDomainInterface', tag: HttpTags.Networks, query: true },
    wait: { seconds: 10, field: 'timeout', marginSeconds: 10 },
  },
} as const satisfies Record<string, OperationSpec>;

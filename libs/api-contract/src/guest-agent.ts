import Type, { type Static } from 'typebox';
import { DomainId } from './names.js';
import { HttpTags, PermissionClass, type OperationSpec } from './operation-spec.js';
import { Access } from './subjects.js';

/** What the guest agent (qemu-ga) reports about the guest: libvirt's virDomainGetGuestInfo (os, hostname, users, timezone). */
export const GuestInfo = Type.Object(
  {
    os: Type.Object(
      {
        id: Type.Optional(Type.String()),
        name: Type.Optional(Type.String()),
        prettyName: Type.Optional(Type.String()),
        version: Type.Optional(Type.String()),
        versionId: Type.Optional(Type.String()),
        kernelRelease: Type.Optional(Type.String()),
        kernelVersion: Type.Optional(Type.String()),
        machine: Type.Optional(Type.String()),
      },
      { additionalProperties: false },
    ),
    hostname: Type.String(),
    users: Type.Array(Type.Object({ name: Type.String(), domain: Type.Optional(Type.String()), loginTime: Type.Number({ description: 'Seconds since the epoch' }) }, { additionalProperties: false }), { maxItems: 1024 }),
    timezone: Type.Optional(Type.Object({ name: Type.Optional(Type.String()), offsetSeconds: Type.Integer() }, { additionalProperties: false })),
  },
  { additionalProperties: false, title: 'GuestInfo' },
);
export type GuestInfo = Static<typeof GuestInfo>;

export const GuestAddressSources = ['agent'] as const;
/** virsh domifaddr: each guest interface with its hardware address and IP addresses. */
export const GuestInterface = Type.Object(
  {
    name: Type.String(),
    hwaddr: Type.Optional(Type.String()),
    addresses: Type.Array(Type.Object({ type: Type.Enum(['ipv4', 'ipv6']), address: Type.String(), prefix: Type.Integer({ minimum: 0, maximum: 128 }) }, { additionalProperties: false }), {
      maxItems: 256,
    }),
  },
  { additionalProperties: false, title: 'GuestInterface' },
);
export type GuestInterface = Static<typeof GuestInterface>;
export const GuestInterfaceList = Type.Object({ interfaces: Type.Array(GuestInterface, { maxItems: 256 }) }, { additionalProperties: false, title: 'GuestInterfaceList' });
export type GuestInterfaceList = Static<typeof GuestInterfaceList>;
export const InterfaceAddressesRequest = Type.Object(
  { id: DomainId, source: Type.Optional(Type.Enum([...GuestAddressSources], { default: 'agent', description: 'Where the addresses come from (libvirt --source); agent: the guest agent' })) },
  { additionalProperties: false },
);

const MountPoint = Type.String({ minLength: 1, maxLength: 4096, pattern: '^/' });
export const FsFreezeBody = Type.Object(
  { mountpoints: Type.Optional(Type.Array(MountPoint, { maxItems: 256, description: 'Only these file systems (default: all)' })) },
  { additionalProperties: false, title: 'FsFreezeBody' },
);
export const FsFreezeRequest = Type.Object({ id: DomainId, ...FsFreezeBody.properties }, { additionalProperties: false });
export const FsFreezeResult = Type.Object({ filesystems: Type.Integer({ minimum: 0, description: 'How many file systems were frozen or thawed' }) }, { additionalProperties: false, title: 'FsFreezeResult' });
export type FsFreezeResult = Static<typeof FsFreezeResult>;

const UserName = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]*\\$?$' });
export const UserPasswordBody = Type.Object(
  {
    password: Type.String({ minLength: 1, maxLength: 1024, pattern: '^[^\\x00\\n]*$', description: 'The new password, or a crypt(3) hash with crypted' }),
    crypted: Type.Optional(Type.Boolean({ description: 'password is already encrypted (virsh set-user-password --encrypted)' })),
  },
  { additionalProperties: false, title: 'UserPasswordBody' },
);
export const UserPasswordRequest = Type.Object({ id: DomainId, user: UserName, ...UserPasswordBody.properties }, { additionalProperties: false });

/** virsh domtime: the guest's clock. */
export const GuestTime = Type.Object(
  { seconds: Type.Integer({ description: 'Seconds since the epoch' }), nanoseconds: Type.Integer({ minimum: 0, maximum: 999_999_999 }) },
  { additionalProperties: false, title: 'GuestTime' },
);
export type GuestTime = Static<typeof GuestTime>;
export const GuestTimeBody = Type.Object(
  {
    sync: Type.Optional(Type.Boolean({ description: "Set the guest's clock to the host's (virsh domtime --sync); the default without seconds" })),
    seconds: Type.Optional(Type.Integer({ minimum: 0, description: 'Set this time instead (virsh domtime --time)' })),
    nanoseconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 999_999_999 })),
  },
  { additionalProperties: false, title: 'GuestTimeBody' },
);
export const GuestTimeRequest = Type.Object({ id: DomainId, ...GuestTimeBody.properties }, { additionalProperties: false });

const Ref = Type.Object({ id: DomainId }, { additionalProperties: false });
const Empty = Type.Object({}, { additionalProperties: false });
const AgentErrors = ['NO_DOMAIN', 'OPERATION_INVALID', 'OPERATION_UNSUPPORTED', 'OPERATION_FAILED', 'GUEST_AGENT_UNRESPONSIVE'] as const;
const wait = { seconds: 15 };

/** Calls answered by the guest agent inside a running domain (qemu: qemu-ga on the org.qemu.guest_agent.0 channel). */
export const GuestAgentOperations = {
  'domain.agent.ping': {
    access: Access.ReadOnly,
    request: Ref,
    response: Empty,
    summary: "Whether the domain's guest agent answers (virsh guest-agent-ping)",
    permission: PermissionClass.Read,
    errors: AgentErrors,
    http: { method: 'POST', path: '/domains/:id/guest-agent/ping', operationId: 'pingGuestAgent', tag: HttpTags.Domains },
    wait,
  },
  'domain.agent.info': {
    access: Access.ReadOnly,
    request: Ref,
    response: GuestInfo,
    summary: 'OS, host name, logged-in users and time zone as the guest agent reports them (virsh guestinfo)',
    permission: PermissionClass.Read,
    errors: AgentErrors,
    http: { method: 'GET', path: '/domains/:id/guest-info', operationId: 'getGuestInfo', tag: HttpTags.Domains },
    wait,
  },
  'domain.interface.addresses': {
    access: Access.ReadOnly,
    request: InterfaceAddressesRequest,
    response: GuestInterfaceList,
    summary: "The guest's interfaces and IP addresses (virsh domifaddr --source agent)",
    permission: PermissionClass.Read,
    errors: AgentErrors,
    http: { method: 'GET', path: '/domains/:id/interface-addresses', operationId: 'getInterfaceAddresses', tag: HttpTags.Domains, query: true },
    wait,
  },
  'domain.fs.freeze': {
    access: Access.ReadWrite,
    request: FsFreezeRequest,
    response: FsFreezeResult,
    summary: "Freeze the guest's file systems for a consistent disk copy (virsh domfsfreeze)",
    permission: PermissionClass.Lifecycle,
    errors: AgentErrors,
    http: { method: 'POST', path: '/domains/:id/fs-freeze', operationId: 'freezeDomainFilesystems', tag: HttpTags.Domains, body: true },
    wait,
  },
  'domain.fs.thaw': {
    access: Access.ReadWrite,
    request: FsFreezeRequest,
    response: FsFreezeResult,
    summary: "Thaw the guest's file systems (virsh domfsthaw)",
    permission: PermissionClass.Lifecycle,
    errors: AgentErrors,
    http: { method: 'POST', path: '/domains/:id/fs-thaw', operationId: 'thawDomainFilesystems', tag: HttpTags.Domains, body: true },
    wait,
  },
  // a password is a login: as powerful as the console
  'domain.user.password': {
    access: Access.ReadWrite,
    request: UserPasswordRequest,
    response: Empty,
    summary: "Set a guest user's password through the guest agent (virsh set-user-password)",
    permission: PermissionClass.Console,
    errors: AgentErrors,
    http: { method: 'PUT', path: '/domains/:id/users/:user/password', operationId: 'setGuestUserPassword', tag: HttpTags.Domains, body: true },
    wait,
  },
  'domain.time.get': {
    access: Access.ReadOnly,
    request: Ref,
    response: GuestTime,
    summary: "The guest's clock (virsh domtime)",
    permission: PermissionClass.Read,
    errors: AgentErrors,
    http: { method: 'GET', path: '/domains/:id/time', operationId: 'getGuestTime', tag: HttpTags.Domains },
    wait,
  },
  'domain.time.set': {
    access: Access.ReadWrite,
    request: GuestTimeRequest,
    response: GuestTime,
    summary: "Set the guest's clock to the host's or to a given time (virsh domtime --sync / --time); answers the guest's new time",
    permission: PermissionClass.Lifecycle,
    errors: AgentErrors,
    http: { method: 'PUT', path: '/domains/:id/time', operationId: 'setGuestTime', tag: HttpTags.Domains, body: true },
    wait,
  },
} satisfies Record<string, OperationSpec>;

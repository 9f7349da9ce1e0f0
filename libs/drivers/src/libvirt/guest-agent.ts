import { VirtError, type GuestInfo, type GuestInterface, type GuestTime } from '@virtbus/api-contract';
import type { DomainRecord } from '../driver.js';
import { unwrap } from '../qemu/qga/channel.js';
import type { QgaExecutor } from '../qemu/qga/commands.js';
import { QemuGuestAgent } from '../qemu/qga/guest-agent.js';
import type { LibvirtClient } from './client.js';
import type { LibvirtDomainAccess } from './libvirt-hotplug.js';
import { AddressSource, GuestInfoType, type DomainRef, type TypedParam } from './protocol.js';

/** Seconds libvirt waits for qemu-ga on a pass-through command (libvirt's own calls use its default). */
const AGENT_COMMAND_TIMEOUT_S = 10;
/** virDomainSetUserPassword flags */
const PASSWORD_ENCRYPTED = 1;
const IP_TYPES = ['ipv4', 'ipv6'] as const;

/** What the guest agent and the monitor pass-through need of the driver: its connection and a domain's reference. */
export type LibvirtGuestAgentHooks = Pick<LibvirtDomainAccess, 'connection' | 'lookup'>;

/**
 * The guest agent of a libvirt QEMU domain: libvirt's own agent APIs (guest info, interface addresses, fs freeze/thaw,
 * user password, time), and qemu-ga commands passed through libvirt-qemu's agent command for ping and exec (libvirt
 * marks the domain tainted by custom-ga-command, as virsh qemu-agent-command does).
 */
export class LibvirtGuestAgent extends QemuGuestAgent {
  constructor(private readonly libvirt: LibvirtGuestAgentHooks) {
    super({ open: async (domain) => agentCommands(libvirt, await libvirt.lookup(domain)) });
  }

  private async call<T>(domain: DomainRecord, work: (client: LibvirtClient, dom: DomainRef) => Promise<T>): Promise<T> {
    if (domain.state !== 'running') throw new VirtError('OPERATION_INVALID', `domain ${domain.config.name} is ${domain.state}: its guest agent needs it running`);
    return work(this.libvirt.connection(), await this.libvirt.lookup(domain));
  }

  /** virDomainGetGuestInfo (os, hostname, users, timezone). */
  override info(domain: DomainRecord): Promise<GuestInfo> {
    return this.call(domain, async (client, dom) => {
      const { params } = await client.call('domainGetGuestInfo', { dom, types: GuestInfoType.OS | GuestInfoType.HOSTNAME | GuestInfoType.USERS | GuestInfoType.TIMEZONE, flags: 0 });
      return guestInfoFromParams(params);
    });
  }

  /** virDomainInterfaceAddresses with the agent as source. */
  override interfaces(domain: DomainRecord): Promise<GuestInterface[]> {
    return this.call(domain, async (client, dom) => {
      const { ifaces } = await client.call('domainInterfaceAddresses', { dom, source: AddressSource.AGENT, flags: 0 });
      return ifaces.map((nic) => ({
        name: nic.name,
        ...(nic.hwaddr ? { hwaddr: nic.hwaddr } : {}),
        addresses: nic.addrs.map((addr) => ({ type: IP_TYPES[addr.type] ?? 'ipv4', address: addr.addr, prefix: addr.prefix })),
      }));
    });
  }

  override fsFreeze(domain: DomainRecord, mountpoints?: readonly string[]): Promise<number> {
    return this.call(domain, async (client, dom) => (await client.call('domainFsFreeze', { dom, mountpoints: [...(mountpoints ?? [])], flags: 0 })).filesystems);
  }

  override fsThaw(domain: DomainRecord): Promise<number> {
    return this.call(domain, async (client, dom) => (await client.call('domainFsThaw', { dom, mountpoints: [], flags: 0 })).filesystems);
  }

  override setUserPassword(domain: DomainRecord, user: string, password: string, crypted: boolean): Promise<void> {
    return this.call(domain, async (client, dom) => {
      await client.call('domainSetUserPassword', { dom, user, password, flags: crypted ? PASSWORD_ENCRYPTED : 0 });
    });
  }

  override getTime(domain: DomainRecord): Promise<GuestTime> {
    return this.call(domain, async (client, dom) => {
      const { seconds, nseconds } = await client.call('domainGetTime', { dom, flags: 0 });
      return { seconds: Number(seconds), nanoseconds: nseconds };
    });
  }

  /** virDomainSetTime to `time`, or to the host's clock when absent (as the qemu driver does), then the guest's time. */
  override async setTime(domain: DomainRecord, time?: GuestTime): Promise<GuestTime> {
    await this.call(domain, async (client, dom) => {
      const now = Date.now();
      const [seconds, nseconds] = time ? [time.seconds, time.nanoseconds] : [Math.floor(now / 1000), (now % 1000) * 1_000_000];
      await client.call('domainSetTime', { dom, seconds: BigInt(seconds), nseconds, flags: 0 });
    });
    return this.getTime(domain);
  }
}

/** qemu-ga commands through QEMU_PROC_DOMAIN_AGENT_COMMAND: libvirt owns the channel and its sync. */
function agentCommands(libvirt: LibvirtGuestAgentHooks, dom: DomainRef): QgaExecutor {
  return {
    execute: async <T>(command: string, args?: Record<string, unknown>, options?: { timeoutMs?: number }): Promise<T> => {
      const timeout = Math.max(1, Math.ceil((options?.timeoutMs ?? AGENT_COMMAND_TIMEOUT_S * 1000) / 1000));
      const cmd = JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}) });
      const { result } = await libvirt.connection().call('qemuDomainAgentCommand', { dom, cmd, timeout, flags: 0 });
      return unwrap<T>(command, Buffer.from(result ?? '{"return":{}}'));
    },
    close: () => undefined,
  };
}

/** virDomainGetGuestInfo's typed parameters as the contract's GuestInfo (libvirt reports login times in milliseconds). */
export function guestInfoFromParams(params: readonly TypedParam[]): GuestInfo {
  const p = new Map(params.map(({ field, value }) => [field, typeof value.value === 'bigint' ? Number(value.value) : value.value]));
  const str = (key: string) => (typeof p.get(key) === 'string' ? (p.get(key) as string) : undefined);
  const num = (key: string) => (typeof p.get(key) === 'number' ? (p.get(key) as number) : undefined);
  const os: GuestInfo['os'] = {};
  for (const [field, key] of [['id', 'id'], ['name', 'name'], ['prettyName', 'pretty-name'], ['version', 'version'], ['versionId', 'version-id'], ['kernelRelease', 'kernel-release'], ['kernelVersion', 'kernel-version'], ['machine', 'machine']] as const) {
    const value = str(`os.${key}`);
    if (value !== undefined) os[field] = value;
  }
  const users = Array.from({ length: num('user.count') ?? 0 }, (_, i) => {
    const userDomain = str(`user.${i}.domain`);
    return { name: str(`user.${i}.name`) ?? '', ...(userDomain ? { domain: userDomain } : {}), loginTime: (num(`user.${i}.login-time`) ?? 0) / 1000 };
  });
  const offset = num('timezone.offset');
  const zone = str('timezone.name');
  return { os, hostname: str('hostname') ?? '', users, ...(offset !== undefined ? { timezone: { ...(zone ? { name: zone } : {}), offsetSeconds: offset } } : {}) };
}

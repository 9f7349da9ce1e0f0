import { VirtError, type GuestInfo, type GuestInterface, type GuestTime } from '@virtbus/api-contract';
import type { DomainRecord, GuestAgentCapability } from '../driver.js';
import { macFor } from '../qemu/command-line.js';

/**
 * A simulated guest agent: answers like qemu-ga in a small Linux guest (its host name is the domain name, one address per
 * NIC), keeps each guest's frozen file systems, passwords and clock offset; a paused guest's agent does not answer.
 */
export class TestGuestAgent implements GuestAgentCapability {
  private readonly frozen = new Map<string, number>();
  private readonly passwords = new Map<string, Map<string, string>>();
  private readonly clockOffsetMs = new Map<string, number>();

  async ping(domain: DomainRecord): Promise<void> {
    this.answering(domain);
  }

  async info(domain: DomainRecord): Promise<GuestInfo> {
    this.answering(domain);
    return {
      os: { id: 'virtbus-test', name: 'virtbus test guest', prettyName: 'virtbus test guest (simulated)', versionId: '1', kernelRelease: '6.1.0-test', machine: 'x86_64' },
      hostname: domain.config.name,
      users: [...(this.passwords.get(domain.config.uuid)?.keys() ?? [])].map((name) => ({ name, loginTime: 0 })),
      timezone: { name: 'UTC', offsetSeconds: 0 },
    };
  }

  async interfaces(domain: DomainRecord): Promise<GuestInterface[]> {
    this.answering(domain);
    return [
      {
        name: 'lo',
        hwaddr: '00:00:00:00:00:00',
        addresses: [
          { type: 'ipv4', address: '127.0.0.1', prefix: 8 },
          { type: 'ipv6', address: '::1', prefix: 128 },
        ],
      },
      ...domain.config.nics
        .map((nic, index) => ({ nic, index }))
        .filter(({ nic }) => nic.type !== 'none')
        .map(({ nic, index }) => ({ name: `eth${index}`, hwaddr: nic.mac ?? macFor(domain.config.uuid, index), addresses: [{ type: 'ipv4' as const, address: `192.0.2.${10 + index}`, prefix: 24 }] })),
    ];
  }

  async fsFreeze(domain: DomainRecord, mountpoints?: readonly string[]): Promise<number> {
    this.answering(domain);
    if (this.frozen.has(domain.config.uuid)) throw new VirtError('OPERATION_INVALID', `domain ${domain.config.name}: its file systems are frozen already`);
    const count = mountpoints?.length ?? 1 + domain.config.disks.length;
    this.frozen.set(domain.config.uuid, count);
    return count;
  }

  async fsThaw(domain: DomainRecord): Promise<number> {
    this.answering(domain);
    const count = this.frozen.get(domain.config.uuid) ?? 0;
    this.frozen.delete(domain.config.uuid);
    return count;
  }

  async setUserPassword(domain: DomainRecord, user: string, password: string): Promise<void> {
    this.answering(domain);
    const users = this.passwords.get(domain.config.uuid) ?? new Map<string, string>();
    users.set(user, password);
    this.passwords.set(domain.config.uuid, users);
  }

  async getTime(domain: DomainRecord): Promise<GuestTime> {
    this.answering(domain);
    return timeOf(Date.now() + (this.clockOffsetMs.get(domain.config.uuid) ?? 0));
  }

  async setTime(domain: DomainRecord, time?: GuestTime): Promise<GuestTime> {
    this.answering(domain);
    const target = time ? time.seconds * 1000 + Math.floor(time.nanoseconds / 1e6) : Date.now();
    this.clockOffsetMs.set(domain.config.uuid, target - Date.now());
    return this.getTime(domain);
  }

  /** The guest is gone: its agent state goes with it. */
  forget(uuid: string): void {
    this.frozen.delete(uuid);
    this.clockOffsetMs.delete(uuid);
  }

  private answering(domain: DomainRecord): void {
    if (domain.state === 'paused') throw new VirtError('GUEST_AGENT_UNRESPONSIVE', `domain ${domain.config.name} is paused: its guest agent cannot answer`);
    if (domain.state !== 'running') throw new VirtError('OPERATION_INVALID', `domain ${domain.config.name} is ${domain.state}: its guest agent needs it running`);
  }
}

function timeOf(ms: number): GuestTime {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanoseconds: (ms - seconds * 1000) * 1e6 };
}

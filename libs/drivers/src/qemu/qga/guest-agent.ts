import { setTimeout as sleep } from 'node:timers/promises';
import { VirtError, type ExecRequest, type ExecResult, type GuestInfo, type GuestInterface, type GuestTime } from '@virtbus/api-contract';
import type { DomainRecord, ExecCapability, GuestAgentCapability } from '../../driver.js';
import { QgaChannel } from './channel.js';
import { QgaCommands, type QgaExecutor, type QgaInterface } from './commands.js';

const SYNC_TIMEOUT_MS = 5_000;
const FREEZE_TIMEOUT_MS = 60_000;
const EXEC_POLL_MS = 100;

export type QemuGuestAgentHooks =
  | {
      /** The guest agent channel socket of a running domain, or OPERATION_INVALID. */
      socketOf(domain: DomainRecord): string;
    }
  | {
      /** Another way to the domain's qemu-ga, one session per call. */
      open(domain: DomainRecord): Promise<QgaExecutor>;
    };

/**
 * The guest agent of QEMU domains: one session per call (connect, guest-sync-delimited, commands, close), calls of one
 * domain one after another (qemu-ga answers in order and has no request ids).
 */
export class QemuGuestAgent implements GuestAgentCapability, ExecCapability {
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(private readonly hooks: QemuGuestAgentHooks) {}

  ping(domain: DomainRecord): Promise<void> {
    return this.session(domain, (qga) => qga.ping());
  }

  info(domain: DomainRecord): Promise<GuestInfo> {
    return this.session(domain, async (qga) => {
      const os = await qga.osInfo();
      const hostname = await qga.hostName();
      const users = await qga.users();
      const timezone = await qga.timezone().catch(() => undefined);
      return {
        os: {
          ...(os.id ? { id: os.id } : {}),
          ...(os.name ? { name: os.name } : {}),
          ...(os['pretty-name'] ? { prettyName: os['pretty-name'] } : {}),
          ...(os.version ? { version: os.version } : {}),
          ...(os['version-id'] ? { versionId: os['version-id'] } : {}),
          ...(os['kernel-release'] ? { kernelRelease: os['kernel-release'] } : {}),
          ...(os['kernel-version'] ? { kernelVersion: os['kernel-version'] } : {}),
          ...(os.machine ? { machine: os.machine } : {}),
        },
        hostname,
        users: users.map((user) => ({ name: user.user, ...(user.domain ? { domain: user.domain } : {}), loginTime: user['login-time'] })),
        ...(timezone ? { timezone: { ...(timezone.zone ? { name: timezone.zone } : {}), offsetSeconds: timezone.offset } } : {}),
      };
    });
  }

  interfaces(domain: DomainRecord): Promise<GuestInterface[]> {
    return this.session(domain, async (qga) =>
      (await qga.networkInterfaces()).map((nic) => ({
        name: nic.name,
        ...(nic['hardware-address'] ? { hwaddr: nic['hardware-address'] } : {}),
        addresses: (nic['ip-addresses'] ?? []).map((address) => ({ type: address['ip-address-type'], address: address['ip-address'], prefix: address.prefix })),
      })),
    );
  }

  /** The guest's counters per NIC by MAC (lower case), from guest-network-get-interfaces' statistics; `timeoutMs` bounds the call. */
  interfaceCounters(domain: DomainRecord, timeoutMs: number): Promise<Map<string, NonNullable<QgaInterface['statistics']>>> {
    return this.session(domain, async (qga) => {
      const counters = new Map<string, NonNullable<QgaInterface['statistics']>>();
      for (const nic of await qga.networkInterfaces({ timeoutMs })) if (nic['hardware-address'] && nic.statistics) counters.set(nic['hardware-address'].toLowerCase(), nic.statistics);
      return counters;
    });
  }

  fsFreeze(domain: DomainRecord, mountpoints?: readonly string[]): Promise<number> {
    return this.session(domain, (qga) => qga.fsfreezeFreeze(mountpoints, { timeoutMs: FREEZE_TIMEOUT_MS }));
  }

  fsThaw(domain: DomainRecord): Promise<number> {
    return this.session(domain, (qga) => qga.fsfreezeThaw({ timeoutMs: FREEZE_TIMEOUT_MS }));
  }

  setUserPassword(domain: DomainRecord, user: string, password: string, crypted: boolean): Promise<void> {
    return this.session(domain, (qga) => qga.setUserPassword(user, password, crypted));
  }

  getTime(domain: DomainRecord): Promise<GuestTime> {
    return this.session(domain, async (qga) => fromNanos(await qga.getTime()));
  }

  setTime(domain: DomainRecord, time?: GuestTime): Promise<GuestTime> {
    return this.session(domain, async (qga) => {
      // the host's clock when no time is given (virsh domtime --sync)
      const nanos = time ? time.seconds * 1e9 + time.nanoseconds : Date.now() * 1e6;
      await qga.setTime(nanos);
      return fromNanos(await qga.getTime());
    });
  }

  /** guest-exec with captured output, polled until it exits or the request's timeout passes. */
  exec(domain: DomainRecord, request: ExecRequest): Promise<ExecResult> {
    return this.session(domain, async (qga) => {
      const [path, ...args] = request.command as [string, ...string[]];
      const env = Object.entries(request.env ?? {}).map(([name, value]) => `${name}=${value}`);
      const pid = await qga.exec(path, args, env);
      const deadline = Date.now() + (request.timeout ?? 60) * 1000;
      for (;;) {
        const status = await qga.execStatus(pid);
        if (status.exited) {
          return {
            exitCode: status.exitcode ?? (status.signal !== undefined ? 128 + status.signal : -1),
            stdout: Buffer.from(status['out-data'] ?? '', 'base64').toString('utf8'),
            stderr: Buffer.from(status['err-data'] ?? '', 'base64').toString('utf8'),
            timedOut: false,
          };
        }
        if (Date.now() > deadline) return { exitCode: -1, stdout: '', stderr: '', timedOut: true };
        await sleep(EXEC_POLL_MS);
      }
    });
  }

  /** Opens a synchronised session for one call, after the domain's earlier calls. */
  private session<T>(domain: DomainRecord, work: (qga: QgaCommands) => Promise<T>): Promise<T> {
    if (domain.state !== 'running') return Promise.reject(new VirtError('OPERATION_INVALID', `domain ${domain.config.name} is ${domain.state}: its guest agent needs it running`));
    const uuid = domain.config.uuid;
    const previous = this.queues.get(uuid) ?? Promise.resolve();
    const call = previous.catch(() => undefined).then(async () => {
      const channel = 'open' in this.hooks ? await this.hooks.open(domain) : await QgaChannel.open(this.hooks.socketOf(domain), { timeoutMs: SYNC_TIMEOUT_MS });
      try {
        return await work(new QgaCommands(channel));
      } finally {
        channel.close();
      }
    });
    const settled = call.catch(() => undefined);
    this.queues.set(uuid, settled);
    void settled.then(() => {
      if (this.queues.get(uuid) === settled) this.queues.delete(uuid);
    });
    return call;
  }
}

function fromNanos(nanos: number): GuestTime {
  const seconds = Math.floor(nanos / 1e9);
  return { seconds, nanoseconds: Math.max(0, Math.min(999_999_999, Math.round(nanos - seconds * 1e9))) };
}

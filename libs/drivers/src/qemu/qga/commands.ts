import type { QgaCallOptions, QgaChannel } from './channel.js';

/** What runs one qemu-ga command: the channel socket, or another path to the agent (libvirt's agent pass-through). */
export type QgaExecutor = Pick<QgaChannel, 'execute' | 'close'>;

/** guest-get-osinfo (qga/qapi-schema.json GuestOSInfo). */
export interface QgaOsInfo {
  id?: string;
  name?: string;
  'pretty-name'?: string;
  version?: string;
  'version-id'?: string;
  'kernel-release'?: string;
  'kernel-version'?: string;
  machine?: string;
}

export interface QgaUser {
  user: string;
  domain?: string;
  'login-time': number;
}

export interface QgaInterface {
  name: string;
  'hardware-address'?: string;
  'ip-addresses'?: { 'ip-address-type': 'ipv4' | 'ipv6'; 'ip-address': string; prefix: number }[];
  /** GuestNetworkInterfaceStat (qemu-ga 7.1+, Linux): the guest's own counters of the interface. */
  statistics?: Record<'rx-bytes' | 'rx-packets' | 'rx-errs' | 'rx-dropped' | 'tx-bytes' | 'tx-packets' | 'tx-errs' | 'tx-dropped', number>;
}

export interface QgaExecStatus {
  exited: boolean;
  exitcode?: number;
  signal?: number;
  'out-data'?: string;
  'err-data'?: string;
  'out-truncated'?: boolean;
  'err-truncated'?: boolean;
}

/** The guest agent's commands this driver uses, typed (qga/qapi-schema.json), over one synchronised channel. */
export class QgaCommands {
  constructor(private readonly channel: QgaExecutor) {}

  async ping(options?: QgaCallOptions): Promise<void> {
    await this.channel.execute('guest-ping', undefined, options);
  }

  osInfo(): Promise<QgaOsInfo> {
    return this.channel.execute('guest-get-osinfo');
  }

  async hostName(): Promise<string> {
    return (await this.channel.execute<{ 'host-name': string }>('guest-get-host-name'))['host-name'];
  }

  users(): Promise<QgaUser[]> {
    return this.channel.execute('guest-get-users');
  }

  timezone(): Promise<{ zone?: string; offset: number }> {
    return this.channel.execute('guest-get-timezone');
  }

  networkInterfaces(options?: QgaCallOptions): Promise<QgaInterface[]> {
    return this.channel.execute('guest-network-get-interfaces', undefined, options);
  }

  /** Number of file systems frozen; freezing can take a while on a busy guest. */
  fsfreezeFreeze(mountpoints?: readonly string[], options?: QgaCallOptions): Promise<number> {
    return mountpoints ? this.channel.execute('guest-fsfreeze-freeze-list', { mountpoints }, options) : this.channel.execute('guest-fsfreeze-freeze', undefined, options);
  }

  fsfreezeThaw(options?: QgaCallOptions): Promise<number> {
    return this.channel.execute('guest-fsfreeze-thaw', undefined, options);
  }

  async setUserPassword(username: string, password: string, crypted: boolean): Promise<void> {
    await this.channel.execute('guest-set-user-password', { username, password: Buffer.from(password).toString('base64'), crypted });
  }

  /** Nanoseconds since the epoch. */
  getTime(): Promise<number> {
    return this.channel.execute('guest-get-time');
  }

  /** Nanoseconds since the epoch; without it the guest reads its RTC. */
  async setTime(nanoseconds?: number): Promise<void> {
    await this.channel.execute('guest-set-time', nanoseconds === undefined ? undefined : { time: nanoseconds });
  }

  async exec(path: string, args: readonly string[], env: readonly string[]): Promise<number> {
    return (await this.channel.execute<{ pid: number }>('guest-exec', { path, arg: args, env, 'capture-output': true })).pid;
  }

  execStatus(pid: number): Promise<QgaExecStatus> {
    return this.channel.execute('guest-exec-status', { pid });
  }
}

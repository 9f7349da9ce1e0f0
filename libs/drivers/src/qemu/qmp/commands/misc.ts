import { QmpCommandGroup, type ExecuteOptions } from './run.js';

/** device_add arguments: the device type, its id and the device's own properties (qapi/qdev.json). */
export type QmpDeviceAdd =
  | { driver: 'virtio-blk-pci'; id: string; drive: string }
  | { driver: 'virtio-net-pci' | 'e1000' | 'rtl8139'; id: string; netdev: string; mac: string };

/** TlsCredsX509Properties (qapi/crypto.json) as object-add takes them. */
export interface QmpTlsCredsX509 {
  'qom-type': 'tls-creds-x509';
  id: string;
  dir: string;
  endpoint: 'client' | 'server';
  'verify-peer': boolean;
}

/** Devices and QOM objects (qapi/qdev.json, qom.json). */
export class MiscCommands extends QmpCommandGroup {
  async deviceAdd(device: QmpDeviceAdd, options?: ExecuteOptions): Promise<void> {
    await this.run('device_add', device, options);
  }

  /** Asks the guest to release the device; it is gone at DEVICE_DELETED. */
  async deviceDel(id: string, options?: ExecuteOptions): Promise<void> {
    await this.run('device_del', { id }, options);
  }

  async objectAdd(object: QmpTlsCredsX509, options?: ExecuteOptions): Promise<void> {
    await this.run('object-add', object, options);
  }

  /** One QOM property (qom-get), e.g. a virtserialport's `name`. */
  async qomGet(path: string, property: string, options?: ExecuteOptions): Promise<unknown> {
    return this.run('qom-get', { path, property }, options);
  }

  /** qemu-monitor-command: a command the caller names (the one place a command is built from input; the agent taints the domain). */
  async passthrough(command: string, args: Record<string, unknown> | undefined, options?: ExecuteOptions): Promise<unknown> {
    return this.run(command, args, options);
  }

  /** An HMP line through QMP (human-monitor-command); the answer is its text. */
  async humanMonitorCommand(commandLine: string, options?: ExecuteOptions): Promise<string> {
    return (await this.run('human-monitor-command', { 'command-line': commandLine }, options)) as string;
  }

  async objectDel(id: string, options?: ExecuteOptions): Promise<void> {
    await this.run('object-del', { id }, options);
  }
}

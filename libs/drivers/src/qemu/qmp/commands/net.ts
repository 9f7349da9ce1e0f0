import { QmpCommandGroup, type ExecuteOptions } from './run.js';

/** NetdevTapOptions (qapi/net.json), the members we set: QEMU opens tap `ifname` itself, no scripts. */
export interface QmpNetdevTap {
  type: 'tap';
  id: string;
  ifname: string;
  script: 'no';
  downscript: 'no';
}

/** Network backends and link state (qapi/net.json). */
export class NetCommands extends QmpCommandGroup {
  async netdevAdd(netdev: QmpNetdevTap, options?: ExecuteOptions): Promise<void> {
    await this.run('netdev_add', netdev, options);
  }

  async netdevDel(id: string, options?: ExecuteOptions): Promise<void> {
    await this.run('netdev_del', { id }, options);
  }

  /** Link up/down of a NIC, by its device id. */
  async setLink(name: string, up: boolean, options?: ExecuteOptions): Promise<void> {
    await this.run('set_link', { name, up }, options);
  }
}

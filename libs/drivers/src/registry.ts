import { VirtError } from '@virtbus/api-contract';
import type { HypervisorDriver } from './driver.js';
import { TestDriver, type TestDriverOptions } from './test/test-driver.js';
import { QemuDriver, type QemuDriverOptions } from './qemu/qemu-driver.js';
import { LxcDriver, type LxcDriverOptions } from './lxc/lxc-driver.js';
import { LibvirtDriver, type LibvirtDriverOptions } from './libvirt/libvirt-driver.js';

export interface DriverOptions {
  test?: TestDriverOptions;
  qemu?: QemuDriverOptions;
  lxc?: LxcDriverOptions;
  libvirt?: LibvirtDriverOptions;
}

/** Every driver virtbus ships, by name: a literal map, so adding one is one line. */
export const DriverFactories = {
  test: (options: DriverOptions) => new TestDriver(options.test),
  qemu: (options: DriverOptions) => new QemuDriver(options.qemu),
  lxc: (options: DriverOptions) => new LxcDriver(options.lxc),
  libvirt: (options: DriverOptions) => {
    if (!options.libvirt) throw new VirtError('INVALID_ARG', 'driver libvirt needs a libvirt URI');
    return new LibvirtDriver(options.libvirt);
  },
} as const satisfies Record<string, (options: DriverOptions) => HypervisorDriver>;

export type DriverName = keyof typeof DriverFactories;
export const DriverNames = Object.keys(DriverFactories) as DriverName[];

export function createDrivers(names: readonly DriverName[], options: DriverOptions = {}): HypervisorDriver[] {
  return names.map((name) => DriverFactories[name](options));
}

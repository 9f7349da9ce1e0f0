import type { ExecuteOptions, QmpRun } from './run.js';

/** CpuInstanceProperties (qapi/machine.json): where a vCPU sits in the topology. */
export interface QmpCpuInstanceProperties {
  'node-id'?: number;
  'socket-id'?: number;
  'die-id'?: number;
  'core-id'?: number;
  'thread-id'?: number;
}

/** HotpluggableCPU (qapi/machine.json): one vCPU slot; `qom-path` is set while a vCPU is plugged in it. */
export interface QmpHotpluggableCpu {
  type: string;
  'vcpus-count': number;
  props: QmpCpuInstanceProperties;
  'qom-path'?: string;
}

/** vCPU hotplug and the balloon: query-hotpluggable-cpus, device_add/device_del of CPU objects, balloon. */
export class MachineCommands {
  constructor(private readonly run: QmpRun) {}

  queryHotpluggableCpus(options?: ExecuteOptions): Promise<QmpHotpluggableCpu[]> {
    return this.run<QmpHotpluggableCpu[]>('query-hotpluggable-cpus', undefined, options);
  }

  /** Plugs a vCPU of the slot's type into the slot (device_add with its topology properties). */
  async cpuAdd(slot: QmpHotpluggableCpu, id: string, options?: ExecuteOptions): Promise<void> {
    await this.run('device_add', { driver: slot.type, id, ...slot.props }, options);
  }

  /** Asks the guest to eject the vCPU at `qomPath` (device_del takes an id or a QOM path); it is gone at DEVICE_DELETED. */
  async cpuDel(qomPath: string, options?: ExecuteOptions): Promise<void> {
    await this.run('device_del', { id: qomPath }, options);
  }

  /** Asks the guest's balloon driver to bring the guest's memory to `bytes` (the guest may take a while). */
  async balloon(bytes: number, options?: ExecuteOptions): Promise<void> {
    await this.run('balloon', { value: bytes }, options);
  }
}

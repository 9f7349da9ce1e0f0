import type { ExecuteOptions, QmpRun } from './run.js';

/** MachineInfo (qapi/machine.json). */
export interface QmpMachineInfo {
  name: string;
  alias?: string;
  'is-default'?: boolean;
  'cpu-max': number;
  deprecated: boolean;
}

/** CpuDefinitionInfo (qapi/machine-target.json). */
export interface QmpCpuDefinitionInfo {
  name: string;
  'unavailable-features'?: string[];
  deprecated: boolean;
}

/** CpuModelExpansionInfo (qapi/machine-target.json): a model with every feature as a boolean property. */
export interface QmpCpuModelExpansion {
  model: { name: string; props?: Record<string, unknown> };
}

/** What the emulator offers (libvirt's capabilities probe: machines, CPU models, host-model expansion). */
export class CapabilityCommands {
  constructor(private readonly run: QmpRun) {}

  async queryMachines(options?: ExecuteOptions): Promise<QmpMachineInfo[]> {
    return (await this.run('query-machines', undefined, options)) as QmpMachineInfo[];
  }

  async queryCpuDefinitions(options?: ExecuteOptions): Promise<QmpCpuDefinitionInfo[]> {
    return (await this.run('query-cpu-definitions', undefined, options)) as QmpCpuDefinitionInfo[];
  }

  async queryCpuModelExpansion(type: 'static' | 'full', name: string, options?: ExecuteOptions): Promise<QmpCpuModelExpansion> {
    return (await this.run('query-cpu-model-expansion', { type, model: { name } }, options)) as QmpCpuModelExpansion;
  }
}

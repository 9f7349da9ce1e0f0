import { DEFAULT_VCPU_UNPLUG_TIMEOUT_S, VirtError, type Domain, type MemorySet, type VcpusSet } from '@virtbus/api-contract';
import type { HypervisorDriver, ResourceCapability } from '@virtbus/drivers';
import { scopeOf } from './disk-ops.js';
import type { DomainJobs } from './jobs.js';

function resources(driver: HypervisorDriver): ResourceCapability {
  if (!driver.resources) throw new VirtError('OPERATION_UNSUPPORTED', `the ${driver.name} driver cannot change vCPUs or memory of a running domain`);
  return driver.resources;
}

/** libvirt's setvcpus and setmem: the running domain (live) and/or the definition (config), scoped like disk hotplug. */
export class DomainResources {
  constructor(private readonly jobs: DomainJobs) {}

  setVcpus(id: string, set: VcpusSet): Promise<Domain> {
    return this.jobs.inJob(id, async (stored, driver) => {
      const scope = scopeOf(stored.config.name, stored.state, set);
      const config = scope.config ? { ...stored.config, vcpus: set.count } : stored.config;
      // a live count beyond the maximum is refused by the same rule as a definition
      driver.validate({ ...stored.config, vcpus: set.count });
      if (scope.live) {
        const timeoutMs = (set.timeout ?? DEFAULT_VCPU_UNPLUG_TIMEOUT_S) * 1000;
        await this.jobs.driverCall(driver, 'setVcpus', stored, () => resources(driver).setVcpus(stored, set.count, { timeoutMs }));
        // libvirt reports a live vCPU change as TUNABLE; the name is its domain-stats one (tunable names match those)
        await this.jobs.domainEvent(stored.config.uuid, 'TUNABLE', { params: { 'vcpu.current': set.count } });
      }
      return this.jobs.saveDevices(stored.config.uuid, config, undefined, scope.config);
    });
  }

  /** No TUNABLE here, like libvirt: a balloon change is reported by BALLOON_CHANGE once the guest gave or took the memory. */
  setMemory(id: string, set: MemorySet): Promise<Domain> {
    return this.jobs.inJob(id, async (stored, driver) => {
      const scope = scopeOf(stored.config.name, stored.state, set);
      const config = scope.config ? { ...stored.config, currentMemory: set.memory } : stored.config;
      driver.validate({ ...stored.config, currentMemory: set.memory });
      if (scope.live) await this.jobs.driverCall(driver, 'setMemory', stored, () => resources(driver).setMemory(stored, set.memory));
      return this.jobs.saveDevices(stored.config.uuid, config, undefined, scope.config);
    });
  }
}

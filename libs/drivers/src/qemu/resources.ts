import { setTimeout as sleep } from 'node:timers/promises';
import { VirtError } from '@virtbus/api-contract';
import type { DomainRecord, ResourceCapability, WaitOptions } from '../driver.js';
import { cpuTopology } from './machine.js';
import { QmpCommandError, type Qmp, type QmpHotpluggableCpu } from './qmp/index.js';

/** A QMP or other error as the VirtError a caller gets, saying what failed. */
export function failure(error: unknown, what: string): VirtError {
  if (error instanceof VirtError) return error;
  if (error instanceof QmpCommandError) return new VirtError('OPERATION_FAILED', `${what}: ${error.desc}`, { cause: error });
  return new VirtError('OPERATION_FAILED', `${what}: ${(error as Error)?.message ?? String(error)}`, { cause: error });
}

/** Slots in topology order (socket, core, thread), so plugs fill from the bottom and unplugs take from the top. */
function ordered(slots: QmpHotpluggableCpu[]): QmpHotpluggableCpu[] {
  const key = (slot: QmpHotpluggableCpu) => [slot.props['socket-id'] ?? 0, slot.props['die-id'] ?? 0, slot.props['core-id'] ?? 0, slot.props['thread-id'] ?? 0];
  return [...slots].sort((a, b) => {
    const [ka, kb] = [key(a), key(b)];
    for (let index = 0; index < ka.length; index++) if (ka[index] !== kb[index]) return ka[index]! - kb[index]!;
    return 0;
  });
}

/** vCPU hotplug over query-hotpluggable-cpus + device_add/device_del, and the balloon target. */
export class QemuResources implements ResourceCapability {
  constructor(private readonly qmpOf: (domain: DomainRecord) => Qmp) {}

  async setVcpus(domain: DomainRecord, count: number, options: WaitOptions): Promise<void> {
    const { config } = domain;
    const { maxVcpus } = cpuTopology(config);
    if (count > maxVcpus) throw new VirtError('INVALID_ARG', `domain ${config.name} may have at most ${maxVcpus} vCPUs (cpu.maxVcpus)`);
    const qmp = this.qmpOf(domain);
    const what = `setvcpus ${count} on ${config.name}`;
    let slots: QmpHotpluggableCpu[];
    try {
      slots = ordered(await qmp.machine.queryHotpluggableCpus());
    } catch (error) {
      throw failure(error, what);
    }
    const plugged = slots.filter((slot) => slot['qom-path'] !== undefined);
    if (count > plugged.length) {
      const free = slots.filter((slot) => slot['qom-path'] === undefined).slice(0, count - plugged.length);
      try {
        for (const slot of free) await qmp.machine.cpuAdd(slot, `vcpu-s${slot.props['socket-id'] ?? 0}c${slot.props['core-id'] ?? 0}t${slot.props['thread-id'] ?? 0}`);
      } catch (error) {
        throw failure(error, what);
      }
      return;
    }
    // the boot vCPU (the lowest slot) stays, as in libvirt
    const deadline = Date.now() + options.timeoutMs;
    for (const slot of plugged.slice(count).reverse()) {
      const path = slot['qom-path']!;
      try {
        await qmp.machine.cpuDel(path);
        // x86 CPUs may leave without a DEVICE_DELETED event: the slot losing its qom-path is the proof
        while ((await qmp.machine.queryHotpluggableCpus()).some((other) => other['qom-path'] === path)) {
          if (Date.now() > deadline) throw new VirtError('OPERATION_TIMEOUT', `${what}: the guest did not eject vCPU ${path} within ${options.timeoutMs} ms`);
          await sleep(200);
        }
      } catch (error) {
        throw failure(error, what);
      }
    }
  }

  async setMemory(domain: DomainRecord, mib: number): Promise<void> {
    if (mib > domain.config.memory) throw new VirtError('INVALID_ARG', `${mib} MiB exceeds the maximum memory of ${domain.config.name} (${domain.config.memory} MiB)`);
    try {
      await this.qmpOf(domain).machine.balloon(mib * 1024 * 1024);
    } catch (error) {
      throw failure(error, `setmem on ${domain.config.name}`);
    }
  }
}

import type { DomainStats } from '@virtbus/api-contract';
import type { DomainListing, DomainStatsSource } from './domain-metrics.js';

/** For specs and tests only (not exported from index.ts): DomainStats-shaped values in every stats group. */
export function fullStats(uuid: string, name: string, cpuNs: number): DomainStats {
  return {
    uuid,
    name,
    state: 'running',
    reason: 'booted',
    collectedAt: new Date().toISOString(),
    cpu: { timeNs: cpuNs, userNs: Math.floor(cpuNs / 2), systemNs: Math.floor(cpuNs / 2) },
    memory: {
      maximumBytes: 268_435_456,
      currentBytes: 268_435_456,
      rssBytes: 100_000_000,
      availableBytes: 200_000_000,
      usableBytes: 150_000_000,
      unusedBytes: 120_000_000,
    },
    vcpu: {
      current: 2,
      maximum: 2,
      list: [
        { id: 0, state: 'running', timeNs: 1_500_000_000 },
        { id: 1, state: 'blocked', timeNs: 500_000_000 },
      ],
    },
    block: [
      {
        name: 'vda',
        path: `/var/lib/virtbus/${name}.qcow2`,
        readRequests: 10,
        readBytes: 40_960,
        readTimeNs: 2_000_000,
        writeRequests: 5,
        writeBytes: 20_480,
        writeTimeNs: 3_000_000,
        flushRequests: 1,
        capacityBytes: 1_073_741_824,
      },
    ],
    net: [{ name: 'vnet0', rxBytes: 1000, rxPackets: 10, rxErrors: 0, rxDrops: 1, txBytes: 2000, txPackets: 20, txErrors: 0, txDrops: 0 }],
  };
}

export function runningListing(uuid: string, name: string): DomainListing {
  return {
    uuid,
    name,
    state: 'running',
    reason: 'booted',
    vcpus: 2,
    memoryMiB: 256,
    disks: [{ target: 'vda', bus: 'virtio', format: 'qcow2', source: `/var/lib/virtbus/${name}.qcow2` }],
    nics: [{ type: 'network', source: 'default', mac: '52:54:00:12:34:56', model: 'virtio' }],
  };
}

/** One running domain whose CPU time grows with wall-clock time at `cpuShare` cores, plus one storage pool. */
export function growingCpuSource(uuid: string, name: string, cpuShare = 0.5): DomainStatsSource {
  const started = Date.now();
  return {
    listDomains: async () => [runningListing(uuid, name)],
    domainStats: async () => fullStats(uuid, name, Math.round((Date.now() - started) * 1e6 * cpuShare)),
    listPools: async () => [{ name: 'default', state: 'running', capacityBytes: 10_737_418_240, allocationBytes: 1_073_741_824, availableBytes: 9_663_676_416 }],
  };
}

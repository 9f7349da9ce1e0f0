import { randomUUID } from 'node:crypto';
import type { DomainConfig } from '@virtbus/api-contract';

/** A domain definition for driver tests and benches: one vCPU, 64 MiB, no disks or NICs, a serial console, a fresh uuid; `fields` replace whole fields. */
export function testDomainConfig(fields: Partial<DomainConfig> & Pick<DomainConfig, 'name' | 'driver'>): DomainConfig {
  return { uuid: randomUUID(), vcpus: 1, memory: 64, os: {}, disks: [], nics: [], console: { type: 'serial' }, autostart: false, ...fields };
}

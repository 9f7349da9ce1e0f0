import { VirtError, type DomainConfig } from '@virtbus/api-contract';

/** Huge pages a new reservation may take (free minus reserved) and their size, from /proc/meminfo. */
export function hugepagesAvailable(meminfo: string): { pages: number; pageKiB: number } {
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(meminfo)?.[1] ?? 0);
  return { pages: Math.max(0, field('HugePages_Free') - field('HugePages_Rsvd')), pageKiB: field('Hugepagesize') };
}

/** Whether the domain's memory must come from huge pages (then its start checks /proc/meminfo). */
export const wantsHugepages = (config: DomainConfig): boolean => config.memoryBacking?.hugepages === true;

/** A hugepages domain starts only when the host has reserved enough pages for all its memory; QEMU's own error is vaguer. */
export function requireHugepages(config: DomainConfig, meminfo: string): void {
  if (!wantsHugepages(config)) return;
  const { pages, pageKiB } = hugepagesAvailable(meminfo);
  const needed = pageKiB > 0 ? Math.ceil((config.memory * 1024) / pageKiB) : Infinity;
  if (pages < needed) {
    throw new VirtError('OPERATION_FAILED', `memoryBacking.hugepages: domain ${config.name} needs ${needed} huge pages of ${pageKiB} kB, the host has ${pages} free (raise /proc/sys/vm/nr_hugepages)`);
  }
}

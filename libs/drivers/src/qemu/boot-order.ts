import type { DomainConfig } from '@virtbus/api-contract';

/** Room for this many devices of one boot kind before the next kind's indexes. */
export const BOOT_INDEX_BLOCK = 100;

/**
 * `bootindex` of every disk from os.boot (libvirt's <boot dev=…/> order): each kind gets a block of indexes in the
 * order given (`['cdrom', 'hd']` → cdroms 0, 1, …, disks 100, 101, …); a kind not listed, or no os.boot, gets none.
 */
export function diskBootIndexes(config: DomainConfig): (number | undefined)[] {
  const order = config.os.boot ?? [];
  const next = { hd: 0, cdrom: 0 };
  return config.disks.map((disk) => {
    const kind = disk.device === 'cdrom' ? 'cdrom' : 'hd';
    const position = order.indexOf(kind);
    if (position < 0) return undefined;
    return position * BOOT_INDEX_BLOCK + next[kind]++;
  });
}

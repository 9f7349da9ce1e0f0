import type { DomainStats, StatsMessage } from '@virtbus/api-contract';

/** Room left for the `part`/`parts` fields and the array's brackets and commas not counted per domain. */
const FRAME_BYTES = 64;

/**
 * One stats sample as messages of at most `maxBytes` each (the bus max_payload): the domains split in order over parts
 * `1..parts`, each with the host figures. A domain too large for a message on its own is left out (counted in `skipped`).
 */
export function statsMessages(sample: Omit<StatsMessage, 'domains' | 'part' | 'parts'>, domains: readonly DomainStats[], maxBytes: number): { messages: string[]; skipped: number } {
  const head = Buffer.byteLength(JSON.stringify({ ...sample, domains: [] })) + FRAME_BYTES;
  const room = maxBytes - head;
  const groups: string[][] = [];
  let group: string[] = [];
  let used = 0;
  let skipped = 0;
  for (const domain of domains) {
    const text = JSON.stringify(domain);
    const size = Buffer.byteLength(text) + 1;
    if (size > room) {
      skipped++;
      continue;
    }
    if (used + size > room) {
      groups.push(group);
      group = [];
      used = 0;
    }
    group.push(text);
    used += size;
  }
  if (group.length > 0 || groups.length === 0) groups.push(group);
  // the domains are spliced in as already serialized text: each is stringified once
  const prefix = JSON.stringify(sample).slice(0, -1);
  const messages = groups.map((texts, index) => `${prefix},"part":${index + 1},"parts":${groups.length},"domains":[${texts.join(',')}]}`);
  return { messages, skipped };
}

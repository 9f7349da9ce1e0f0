import { compileValidator, StatsMessage, type DomainStats } from '@virtbus/api-contract';
import { describe, expect, it } from 'vitest';
import { statsMessages } from './stats-messages.js';

const validMessage = compileValidator(StatsMessage);
const host = { node: 'n1', collectedAt: '2026-01-01T00:00:00.000Z', cpu: { user: 1, nice: 0, system: 1, idle: 1, iowait: 0, irq: 0, softirq: 0, steal: 0 }, memory: { totalBytes: 1, freeBytes: 1, availableBytes: 1 }, numa: [] };
const sample = { kind: 'node.stats' as const, node: 'n1', collectedAt: '2026-01-01T00:00:00.000Z', host };
const domain = (index: number, extra = ''): DomainStats => ({
  uuid: `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`,
  name: `d-${index}${extra}`,
  state: 'shutoff',
  reason: 'unknown',
  collectedAt: '2026-01-01T00:00:00.000Z',
});

describe('statsMessages', () => {
  it('keeps a small sample in one message, part 1 of 1', () => {
    const { messages, skipped } = statsMessages(sample, [domain(1), domain(2)], 1024 * 1024);
    expect(skipped).toBe(0);
    expect(messages).toHaveLength(1);
    const parsed = validMessage.parse(JSON.parse(messages[0]!));
    expect(parsed).toMatchObject({ part: 1, parts: 1, host });
    expect(parsed.domains.map((d) => d.name)).toEqual(['d-1', 'd-2']);
  });

  it('splits 10,000 domains into valid messages below the limit that hold every domain once, in order', () => {
    const domains = Array.from({ length: 10_000 }, (_, index) => domain(index));
    const maxBytes = 64 * 1024;
    const { messages, skipped } = statsMessages(sample, domains, maxBytes);
    expect(skipped).toBe(0);
    expect(messages.length).toBeGreaterThan(1);
    const parsed = messages.map((text) => {
      expect(Buffer.byteLength(text)).toBeLessThanOrEqual(maxBytes);
      return validMessage.parse(JSON.parse(text));
    });
    expect(parsed.map((message) => [message.part, message.parts])).toEqual(parsed.map((_, index) => [index + 1, messages.length]));
    expect(parsed.flatMap((message) => message.domains.map((d) => d.uuid))).toEqual(domains.map((d) => d.uuid));
  });

  it('leaves out a domain that cannot fit a message on its own and counts it', () => {
    const { messages, skipped } = statsMessages(sample, [domain(1), domain(2, 'x'.repeat(2000)), domain(3)], 1500);
    expect(skipped).toBe(1);
    expect(messages.flatMap((text) => (JSON.parse(text) as StatsMessage).domains.map((d) => d.name))).toEqual(['d-1', 'd-3']);
  });
});

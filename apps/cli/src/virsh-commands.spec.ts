import { describe, expect, it } from 'vitest';
import { statsLines } from './virsh-commands.js';

describe('statsLines (virtbus domstats like virsh domstats)', () => {
  it('prints libvirt key names as key=value lines, memory in KiB, indexed blocks and NICs, and skips absent figures', () => {
    const text = statsLines({
      uuid: '6f1c1d5e-8a3b-4c1e-9d2f-0a1b2c3d4e5f',
      name: 'vm1',
      state: 'running',
      reason: 'booted',
      collectedAt: '2026-12-05T00:00:00.000Z',
      cpu: { timeNs: 1500 },
      memory: { maximumBytes: 64 * 1024 * 1024, rssBytes: 2048 },
      block: [{ name: 'vda', readRequests: 1, readBytes: 512, readTimeNs: 3, writeRequests: 0, writeBytes: 0, writeTimeNs: 0 }],
      net: [{ name: 'vnet0', rxBytes: 10, rxPackets: 1, rxErrors: 0, rxDrops: 0, txBytes: 20, txPackets: 2, txErrors: 0, txDrops: 0 }],
    });
    const lines = text.split('\n');
    expect(lines[0]).toBe("Domain: 'vm1'");
    expect(lines).toContain('  state.state=running');
    expect(lines).toContain('  cpu.time=1500');
    expect(lines).toContain('  balloon.maximum=65536');
    expect(lines).toContain('  balloon.rss=2');
    expect(lines).toContain('  block.count=1');
    expect(lines).toContain('  block.0.rd.bytes=512');
    expect(lines).toContain('  net.0.tx.bytes=20');
    expect(text).not.toMatch(/cpu\.user|balloon\.current|vcpu\.|block\.0\.path|pids\./);
  });
});

import { describe, expect, it } from 'vitest';
import { inNetns, netnsPath } from './netns.js';

describe('inNetns', () => {
  it('leaves the command alone without a namespace', () => {
    expect(inNetns(undefined, 'ip', ['link', 'show'])).toEqual({ command: 'ip', args: ['link', 'show'] });
  });

  it('prefixes nsenter with the namespace path', () => {
    expect(inNetns('vb-test1', 'nft', ['-f', '-'])).toEqual({
      command: 'nsenter',
      args: ['--net=/run/netns/vb-test1', '--', 'nft', '-f', '-'],
    });
  });

  it('rejects names that escape /run/netns', () => {
    expect(() => netnsPath('../x')).toThrow(/invalid network namespace/);
    expect(() => netnsPath('-x')).toThrow(/invalid network namespace/);
    expect(() => netnsPath('')).toThrow(/invalid network namespace/);
  });
});

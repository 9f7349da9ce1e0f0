import { describe, expect, it } from 'vitest';
import { baselineCpu, compareCpu, type HostCpu } from './capabilities.js';

const cpu = (flags: string[], vendor = 'GenuineIntel'): HostCpu => ({ arch: 'x86_64', vendor, model: 'm', flags });

describe('CPU compare and baseline', () => {
  it('compares like virsh cpu-compare: identical, superset, incompatible with the missing flags', () => {
    expect(compareCpu(cpu(['a', 'b']), cpu(['b', 'a']))).toEqual({ result: 'identical', missingFeatures: [] });
    expect(compareCpu(cpu(['a', 'b']), cpu(['a']))).toEqual({ result: 'superset', missingFeatures: [] });
    expect(compareCpu(cpu(['a']), cpu(['a', 'c']))).toEqual({ result: 'incompatible', missingFeatures: ['c'] });
    expect(compareCpu(cpu(['a']), cpu(['a'], 'AuthenticAMD')).result).toBe('incompatible');
  });

  it('keeps the flags every CPU has', () => {
    expect(baselineCpu([cpu(['a', 'b', 'c']), cpu(['c', 'a']), cpu(['a', 'c', 'd'])])).toEqual(cpu(['a', 'c']));
    expect(baselineCpu([cpu(['a']), cpu(['a'], 'AuthenticAMD')]).vendor).toBe('mixed');
  });
});

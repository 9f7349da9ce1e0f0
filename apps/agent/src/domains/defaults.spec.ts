import type { DomainConfig } from '@virtbus/api-contract';
import { describe, expect, it } from 'vitest';
import { applyPut, configFromPost, publicConfig } from './defaults.js';

describe('graphics password in the config', () => {
  const defined = configFromPost({ name: 'vm1', driver: 'test', graphics: { type: 'vnc', password: 'sekrit' } });

  it('is stored, and a read shows only that it is set', () => {
    expect(defined.graphics).toEqual({ type: 'vnc', video: 'std', password: 'sekrit' });
    const shown = publicConfig(defined);
    expect(shown.graphics).toEqual({ type: 'vnc', video: 'std', passwordSet: true });
    expect(JSON.stringify(shown)).not.toContain('sekrit');
    expect(defined.graphics?.password).toBe('sekrit');
  });

  it('survives an update that round-trips a read (passwordSet is ignored), changes with a new one, goes with an empty one', () => {
    const roundTrip = applyPut(defined, { graphics: publicConfig(defined).graphics! });
    expect(roundTrip.graphics).toEqual({ type: 'vnc', video: 'std', password: 'sekrit' });
    expect(applyPut(defined, { graphics: { type: 'vnc', password: 'new' } }).graphics?.password).toBe('new');
    const removed: DomainConfig = applyPut(defined, { graphics: { type: 'vnc', password: '' } });
    expect(removed.graphics).toEqual({ type: 'vnc', video: 'std' });
    expect(publicConfig(removed)).toBe(removed);
    expect(applyPut(defined, { graphics: { type: 'none' } }).graphics).toBeUndefined();
  });
});

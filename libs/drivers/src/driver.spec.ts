import { describe, expect, it } from 'vitest';
import { driverCapabilities, type HypervisorDriver } from './driver.js';
import { TestDriver } from './test/test-driver.js';

describe('driverCapabilities', () => {
  it('names exactly the capability slots a driver fills, after lifecycle and before driver facts', () => {
    const partial = { console: {}, disks: {} } as unknown as HypervisorDriver;
    expect(driverCapabilities(partial, ['accel:tcg'])).toEqual(['lifecycle', 'console', 'disks', 'accel:tcg']);
  });

  it('is what the test driver probes', async () => {
    const driver = new TestDriver();
    const info = await driver.probe();
    expect(info.capabilities).toEqual(['lifecycle', 'console', 'graphics', 'stats', 'snapshots', 'save-restore', 'disks', 'guest-agent', 'resources', 'block-jobs']);
    expect(info.capabilities).toEqual(driverCapabilities(driver));
  });
});

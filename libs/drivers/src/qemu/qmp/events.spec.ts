import { DomainEventIds } from '@virtbus/api-contract';
import { describe, expect, it } from 'vitest';
import { domainEventsOf } from './events.js';

const qmp = (event: string, data: Record<string, unknown>) => ({ event, data, timestamp: { seconds: 0, microseconds: 0 } });

describe('QMP events as libvirt domain events', () => {
  it('maps each QMP event to its libvirt event and details', () => {
    expect(domainEventsOf(qmp('RESET', { guest: true, reason: 'guest-reset' }))).toEqual([{ event: 'REBOOT', details: {} }]);
    expect(domainEventsOf(qmp('RTC_CHANGE', { offset: 3600 }))).toEqual([{ event: 'RTC_CHANGE', details: { offset: 3600 } }]);
    expect(domainEventsOf(qmp('WATCHDOG', { action: 'reset' }))).toEqual([{ event: 'WATCHDOG', details: { action: 'reset' } }]);
    expect(domainEventsOf(qmp('DEVICE_TRAY_MOVED', { device: '', id: 'hda', 'tray-open': true }))).toEqual([{ event: 'TRAY_CHANGE', details: { device: 'hda', reason: 'OPEN' } }]);
    expect(domainEventsOf(qmp('BALLOON_CHANGE', { actual: 128 * 1024 * 1024 }))).toEqual([{ event: 'BALLOON_CHANGE', details: { actualKiB: 131072 } }]);
    expect(domainEventsOf(qmp('DEVICE_UNPLUG_GUEST_ERROR', { path: '/machine/peripheral/vdb' }))).toEqual([
      { event: 'DEVICE_REMOVAL_FAILED', details: { device: 'vdb', path: '/machine/peripheral/vdb' } },
    ]);
    const ost = (source: number, status: number) => qmp('ACPI_DEVICE_OST', { info: { device: 'dimm0', slot: '0', 'slot-type': 'DIMM', source, status } });
    expect(domainEventsOf(ost(3, 0x80))).toEqual([{ event: 'DEVICE_REMOVAL_FAILED', details: { device: 'dimm0' } }]);
    expect(domainEventsOf(ost(0x103, 0x01))).toHaveLength(1);
    // eject in progress (0x84), success, and a plug report are no failures
    expect([ost(3, 0x84), ost(3, 0), ost(1, 0x80)].flatMap(domainEventsOf)).toEqual([]);
    expect(domainEventsOf(qmp('MIGRATION_PASS', { pass: 3 }))).toEqual([{ event: 'MIGRATION_ITERATION', details: { iteration: 3 } }]);
    expect(domainEventsOf(qmp('BLOCK_JOB_READY', { type: 'mirror', device: 'vda' }))).toEqual([{ event: 'BLOCK_JOB', details: { device: 'vda', jobType: 'COPY', status: 'READY' } }]);
    expect(domainEventsOf(qmp('STOP', {}))).toEqual([]);
  });

  it('gives IO_ERROR and IO_ERROR_REASON for one block I/O error, named by the disk target', () => {
    const events = domainEventsOf(qmp('BLOCK_IO_ERROR', { device: '', 'node-name': 'fmt-vdb', operation: 'write', action: 'stop', nospace: true, reason: 'No space left on device' }));
    expect(events).toEqual([
      { event: 'IO_ERROR', details: { device: 'vdb', action: 'stop' } },
      { event: 'IO_ERROR_REASON', details: { device: 'vdb', action: 'stop', reason: 'enospc' } },
    ]);
  });

  it("numbers events as libvirt's virDomainEventID does", () => {
    expect([DomainEventIds.REBOOT, DomainEventIds.GRAPHICS, DomainEventIds.TRAY_CHANGE, DomainEventIds.AGENT_LIFECYCLE, DomainEventIds.METADATA_CHANGE]).toEqual([1, 5, 10, 18, 23]);
  });
});

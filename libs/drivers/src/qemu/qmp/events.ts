import type { DomainEventDetails, DomainEventName } from '@virtbus/api-contract';
import type { QmpEvent } from './monitor.js';

/** QMP event payloads the driver maps to libvirt's domain events (qapi/run-state.json, block-core.json, qdev.json, machine.json, char.json, migration.json). */
export interface QmpEventData {
  RESET: { guest: boolean; reason?: string };
  RTC_CHANGE: { offset: number; 'qom-path'?: string };
  WATCHDOG: { action: string };
  BLOCK_IO_ERROR: { device: string; 'node-name'?: string; operation: 'read' | 'write'; action: 'ignore' | 'report' | 'stop'; nospace?: boolean; reason: string };
  DEVICE_TRAY_MOVED: { device: string; id: string; 'tray-open': boolean };
  BALLOON_CHANGE: { actual: number };
  DEVICE_UNPLUG_GUEST_ERROR: { device?: string; path: string };
  VSERPORT_CHANGE: { id: string; open: boolean };
  MIGRATION_PASS: { pass: number };
  BLOCK_JOB_COMPLETED: { type: string; device: string; error?: string };
  BLOCK_JOB_CANCELLED: { type: string; device: string };
  BLOCK_JOB_READY: { type: string; device: string };
  BLOCK_JOB_ERROR: { device: string; operation: string; action: string };
  ACPI_DEVICE_OST: { info: { device?: string; slot: string; 'slot-type': string; source: number; status: number } };
}

/** One libvirt domain event from one QMP event. */
export interface MappedDomainEvent {
  event: DomainEventName;
  details: DomainEventDetails;
}

/** The channel name libvirt and qemu-ga use for the guest agent's virtio-serial port. */
export const GUEST_AGENT_CHANNEL = 'org.qemu.guest_agent.0';

/** QEMU's block job type → virDomainBlockJobType name. */
const BLOCK_JOB_TYPES: Record<string, string> = { stream: 'PULL', mirror: 'COPY', commit: 'COMMIT', 'active-commit': 'ACTIVE_COMMIT', backup: 'BACKUP' };

/** Disk targets name the devices; block nodes are `fmt-<target>`/`file-<target>` (command-line.ts). */
const diskOfNode = (node: string | undefined, device: string): string => (node ? node.replace(/^(fmt|file)-/, '') : device);

/** A device id is the QOM path's last part when QEMU gives no id (`/machine/peripheral/<id>`). */
const deviceOf = (data: { device?: string; path: string }): string => data.device || (data.path.split('/').pop() ?? data.path);

/**
 * libvirt's domain events for one QMP event (IO errors give both IO_ERROR and IO_ERROR_REASON); [] for the others.
 * DEVICE_ADDED/DEVICE_REMOVED come from the agent once a hotplug or unplug completed (any driver), not from DEVICE_DELETED.
 */
export function domainEventsOf(qmpEvent: QmpEvent): MappedDomainEvent[] {
  const data = qmpEvent.data;
  switch (qmpEvent.event) {
    case 'RESET': {
      const reset = data as unknown as QmpEventData['RESET'];
      return reset.guest === false ? [] : [{ event: 'REBOOT', details: {} }];
    }
    case 'RTC_CHANGE':
      return [{ event: 'RTC_CHANGE', details: { offset: Math.trunc((data as unknown as QmpEventData['RTC_CHANGE']).offset) } }];
    case 'WATCHDOG':
      return [{ event: 'WATCHDOG', details: { action: (data as unknown as QmpEventData['WATCHDOG']).action } }];
    case 'BLOCK_IO_ERROR': {
      const error = data as unknown as QmpEventData['BLOCK_IO_ERROR'];
      const details = { device: diskOfNode(error['node-name'], error.device), action: error.action };
      return [
        { event: 'IO_ERROR', details },
        { event: 'IO_ERROR_REASON', details: { ...details, reason: error.nospace ? 'enospc' : error.reason } },
      ];
    }
    case 'DEVICE_TRAY_MOVED': {
      const tray = data as unknown as QmpEventData['DEVICE_TRAY_MOVED'];
      return [{ event: 'TRAY_CHANGE', details: { device: tray.id || tray.device, reason: tray['tray-open'] ? 'OPEN' : 'CLOSE' } }];
    }
    case 'BALLOON_CHANGE':
      return [{ event: 'BALLOON_CHANGE', details: { actualKiB: Math.floor((data as unknown as QmpEventData['BALLOON_CHANGE']).actual / 1024) } }];
    case 'DEVICE_UNPLUG_GUEST_ERROR': {
      const failed = data as unknown as QmpEventData['DEVICE_UNPLUG_GUEST_ERROR'];
      return [{ event: 'DEVICE_REMOVAL_FAILED', details: { device: deviceOf(failed), path: failed.path } }];
    }
    case 'ACPI_DEVICE_OST': {
      // x86 guests refuse a DIMM unplug through ACPI _OST (QEMU's DEVICE_UNPLUG_GUEST_ERROR stays silent there); libvirt's rule:
      // eject request (0x003) or eject processing (0x103) answered by failure (0x01) or an eject-refused code (0x80-0x83)
      const { info } = data as unknown as QmpEventData['ACPI_DEVICE_OST'];
      const refused = info['slot-type'] === 'DIMM' && (info.source === 0x003 || info.source === 0x103) && (info.status === 0x01 || (info.status >= 0x80 && info.status <= 0x83));
      return refused && info.device ? [{ event: 'DEVICE_REMOVAL_FAILED', details: { device: info.device } }] : [];
    }
    case 'MIGRATION_PASS':
      return [{ event: 'MIGRATION_ITERATION', details: { iteration: (data as unknown as QmpEventData['MIGRATION_PASS']).pass } }];
    case 'BLOCK_JOB_COMPLETED': {
      const job = data as unknown as QmpEventData['BLOCK_JOB_COMPLETED'];
      return [{ event: 'BLOCK_JOB', details: { device: diskOfNode(undefined, job.device), jobType: BLOCK_JOB_TYPES[job.type] ?? job.type.toUpperCase(), status: job.error ? 'FAILED' : 'COMPLETED' } }];
    }
    case 'BLOCK_JOB_CANCELLED':
    case 'BLOCK_JOB_READY': {
      const job = data as unknown as QmpEventData['BLOCK_JOB_READY'];
      return [{ event: 'BLOCK_JOB', details: { device: job.device, jobType: BLOCK_JOB_TYPES[job.type] ?? job.type.toUpperCase(), status: qmpEvent.event === 'BLOCK_JOB_READY' ? 'READY' : 'CANCELED' } }];
    }
    default:
      return [];
  }
}

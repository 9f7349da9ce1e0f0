import { VirtError, type QemuMonitorCommand } from '@virtbus/api-contract';
import type { DomainRecord, MonitorCapability } from '../driver.js';
import type { LibvirtGuestAgentHooks } from './guest-agent.js';
import { MonitorFlag } from './protocol.js';

/** QEMU's `return` from the reply libvirt passes back as JSON; an `error` reply fails as the qemu driver's QMP errors do. */
export function monitorReturn(reply: string, what: string): unknown {
  let parsed: { return?: unknown; error?: { class?: string; desc?: string } };
  try {
    parsed = JSON.parse(reply) as typeof parsed;
  } catch (error) {
    throw new VirtError('OPERATION_FAILED', `${what}: libvirt answered no JSON`, { cause: error });
  }
  if (parsed.error) throw new VirtError('OPERATION_FAILED', `${what}: ${parsed.error.desc ?? parsed.error.class ?? 'QEMU error'}`);
  return parsed.return;
}

/**
 * qemu-monitor-command for libvirt's QEMU domains through libvirt-qemu's monitor command (libvirt marks the domain
 * tainted custom-monitor, as virsh qemu-monitor-command does); the QMP command is built from the request, never spliced.
 */
export class LibvirtQemuMonitor implements MonitorCapability {
  constructor(private readonly libvirt: LibvirtGuestAgentHooks) {}

  async command(domain: DomainRecord, { command, arguments: args, hmp }: QemuMonitorCommand): Promise<unknown> {
    const client = this.libvirt.connection();
    const dom = await this.libvirt.lookup(domain);
    if (hmp) return (await client.call('qemuDomainMonitorCommand', { dom, cmd: command, flags: MonitorFlag.HMP })).result;
    const { result } = await client.call('qemuDomainMonitorCommand', { dom, cmd: JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}) }), flags: 0 });
    return monitorReturn(result, `QMP ${command} on ${domain.config.name}`);
  }
}

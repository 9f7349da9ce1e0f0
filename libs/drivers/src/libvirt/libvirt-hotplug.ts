import { setTimeout as sleep } from 'node:timers/promises';
import { VirtError, type DomainNic } from '@virtbus/api-contract';
import type { DiskCapability, DomainRecord, Media, NicCapability, PluggedDisk, WaitOptions } from '../driver.js';
import type { LibvirtClient } from './client.js';
import { deviceElement, diskTargetOf, diskXml, escapeXml, macOf, nicXml } from './domain-xml.js';
import { DeviceFlag, type DomainRef } from './protocol.js';

/** What the hotplug and block-job groups need of the driver: its connection, a domain's libvirt reference, its busy marking. */
export interface LibvirtDomainAccess {
  connection(): LibvirtClient;
  lookup(domain: DomainRecord): Promise<DomainRef>;
  busyWith<T>(domain: DomainRecord, work: () => Promise<T>): Promise<T>;
}

const POLL_MS = 200;
const TRAY_ATTEMPTS = 5;

/**
 * Disk and NIC hotplug through virDomainAttachDeviceFlags / DetachDeviceFlags / UpdateDeviceFlags on the running domain
 * (AFFECT_LIVE: the agent keeps the definition and renders it again at the next start). Device XML comes from the same
 * renderer as the domain's define; detach and update name the device as libvirt's live XML holds it.
 */
export class LibvirtHotplug implements DiskCapability, NicCapability {
  constructor(private readonly access: LibvirtDomainAccess) {}

  async attachDisk(domain: DomainRecord, disk: PluggedDisk): Promise<void> {
    if (disk.device === 'cdrom') throw new VirtError('OPERATION_UNSUPPORTED', 'a cdrom drive cannot be hotplugged: change its media instead');
    await this.onDevice(domain, 'domainAttachDeviceFlags', async () => diskXml(disk, disk.target));
  }

  async detachDisk(domain: DomainRecord, target: string, options: WaitOptions): Promise<void> {
    const found = (body: string) => diskTargetOf(body) === target;
    await this.detach(domain, 'disk', found, `disk ${target}`, options);
  }

  /** virDomainUpdateDeviceFlags on the cdrom drive: the live element with the new `<source>`, or none (eject). */
  async changeMedia(domain: DomainRecord, target: string, media: Media | undefined): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.onDevice(domain, 'domainUpdateDeviceFlags', async (xml) => {
          const drive = this.live(xml, 'disk', (body) => diskTargetOf(body) === target, `cdrom drive ${target}`);
          const empty = drive.replace(/<source\b[^>]*?(\/>|>[\s\S]*?<\/source>)/g, '').replace(/<driver\b([^>]*?)type='[^']*'/, `<driver$1type='${media?.format ?? 'raw'}'`);
          return media ? empty.replace(/<target\b/, `<source file='${escapeXml(media.path)}'/><target`) : empty;
        });
      } catch (error) {
        // libvirt waits a bounded time for the tray it opened; on a loaded host it may still be closing: it is open by the next try
        if (attempt >= TRAY_ATTEMPTS || !/Tray of device .* is not open/.test((error as Error).message)) throw error;
        await sleep(POLL_MS * attempt);
      }
    }
  }

  /** The live `<interface>` with its `<link state>` set (libvirt's domif-setlink). */
  async setLink(domain: DomainRecord, mac: string, up: boolean): Promise<void> {
    await this.onDevice(domain, 'domainUpdateDeviceFlags', async (xml) => {
      const nic = this.live(xml, 'interface', (body) => macOf(body) === mac.toLowerCase(), `NIC ${mac}`).replace(/<link\b[^>]*\/>/g, '');
      return nic.replace(/<\/interface>$/, `<link state='${up ? 'up' : 'down'}'/></interface>`);
    });
  }

  async attachNic(domain: DomainRecord, nic: DomainNic & { mac: string }): Promise<void> {
    if (nic.type === 'none') throw new VirtError('INVALID_ARG', 'a NIC of type none has nothing to plug');
    await this.onDevice(domain, 'domainAttachDeviceFlags', async () => nicXml(nic, nic.mac));
  }

  async detachNic(domain: DomainRecord, mac: string, options: WaitOptions): Promise<void> {
    await this.detach(domain, 'interface', (body) => macOf(body) === mac.toLowerCase(), `NIC ${mac}`, options);
  }

  /** Detaches the live device, then waits until it left the live XML (the guest released it) or the wait expires. */
  private async detach(domain: DomainRecord, kind: 'disk' | 'interface', match: (body: string) => boolean, what: string, options: WaitOptions): Promise<void> {
    await this.onDevice(domain, 'domainDetachDeviceFlags', async (xml) => this.live(xml, kind, match, what));
    const deadline = Date.now() + options.timeoutMs;
    for (;;) {
      if (!deviceElement(await this.liveXml(domain), kind, match)) return;
      if (Date.now() >= deadline) throw new VirtError('OPERATION_TIMEOUT', `detach of ${what} from ${domain.config.name}: the guest did not release it within ${options.timeoutMs} ms`);
      await sleep(POLL_MS);
    }
  }

  private async onDevice(domain: DomainRecord, procedure: 'domainAttachDeviceFlags' | 'domainDetachDeviceFlags' | 'domainUpdateDeviceFlags', xmlOf: (liveXml: string) => Promise<string>): Promise<void> {
    await this.access.busyWith(domain, async () => {
      const dom = await this.access.lookup(domain);
      const xml = await xmlOf(procedure === 'domainAttachDeviceFlags' ? '' : (await this.access.connection().call('domainGetXmlDesc', { dom, flags: 0 })).xml);
      await this.access.connection().call(procedure, { dom, xml, flags: DeviceFlag.LIVE });
    });
  }

  private async liveXml(domain: DomainRecord): Promise<string> {
    return (await this.access.connection().call('domainGetXmlDesc', { dom: await this.access.lookup(domain), flags: 0 })).xml;
  }

  private live(xml: string, kind: 'disk' | 'interface', match: (body: string) => boolean, what: string): string {
    const element = deviceElement(xml, kind, match);
    if (!element) throw new VirtError('INVALID_ARG', `the running domain has no ${what}`);
    return element;
  }
}

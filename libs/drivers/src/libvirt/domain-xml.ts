import { DomainDisk, DomainNic, type DomainConfig } from '@virtbus/api-contract';
import { Value } from 'typebox/value';

/** One element of libvirt's XML: its attributes and what it holds. */
interface XmlElement {
  attrs: Record<string, string>;
  body: string;
}

/** Text for an XML attribute value or element body (libvirt's parser reads numeric character references). */
export const escapeXml = (text: string) => text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
const unescapeXml = (text: string) =>
  text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, name: string) =>
    name.startsWith('#x') || name.startsWith('#X') ? String.fromCodePoint(parseInt(name.slice(2), 16)) : name.startsWith('#') ? String.fromCodePoint(Number(name.slice(1))) : (ENTITIES[name] ?? whole),
  );

/** Every `<name …/>` or `<name …>…</name>` in `xml` (libvirt writes its XML itself: no CDATA, the elements read here do not nest in themselves). */
function elements(xml: string, name: string): XmlElement[] {
  const found: XmlElement[] = [];
  for (const match of xml.matchAll(new RegExp(`<${name}(\\s[^>]*?)?(?:/>|>([\\s\\S]*?)</${name}>)`, 'g'))) {
    const attrs: Record<string, string> = {};
    for (const [, key, double, single] of (match[1] ?? '').matchAll(/([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) attrs[key!] = unescapeXml(double ?? single ?? '');
    found.push({ attrs, body: match[2] ?? '' });
  }
  return found;
}
const first = (xml: string, name: string) => elements(xml, name)[0];
const pick = <T extends string>(value: string | undefined, allowed: readonly T[]): T | undefined => (allowed.includes(value as T) ? (value as T) : undefined);

/** libvirt's disks virtbus can hold: file and block sources of disk and cdrom devices (libvirt's pool volumes are not the node's pools; they, network disks, empty drives and floppies are left to libvirt's XML). */
function disksOf(devices: string): DomainDisk[] {
  return elements(devices, 'disk').flatMap(({ attrs, body }) => {
    const source = first(body, 'source')?.attrs ?? {};
    const path = source['file'] ?? source['dev'];
    const device = pick(attrs['device'] ?? 'disk', ['disk', 'cdrom'] as const);
    if (!path || !device) return [];
    const target = first(body, 'target')?.attrs ?? {};
    const disk = {
      source: { path },
      device,
      ...(pick(first(body, 'driver')?.attrs['type'], ['qcow2', 'raw'] as const) ? { format: first(body, 'driver')!.attrs['type'] } : {}),
      ...(pick(target['bus'], ['virtio', 'sata', 'ide'] as const) ? { bus: target['bus'] } : {}),
      ...(target['dev'] ? { target: target['dev'] } : {}),
      ...(first(body, 'readonly') ? { readonly: true } : {}),
    };
    return Value.Check(DomainDisk, disk) ? [disk] : [];
  });
}

/** libvirt's network, bridge and user NICs (direct, ethernet and the rest are left to libvirt's XML). */
function nicsOf(devices: string): DomainNic[] {
  return elements(devices, 'interface').flatMap(({ attrs, body }) => {
    const type = pick(attrs['type'], ['network', 'bridge', 'user'] as const);
    if (!type) return [];
    const source = first(body, 'source')?.attrs ?? {};
    const from = type === 'network' ? source['network'] : type === 'bridge' ? source['bridge'] : undefined;
    const mac = first(body, 'mac')?.attrs['address'];
    const model = pick(first(body, 'model')?.attrs['type'], ['virtio', 'e1000', 'rtl8139'] as const);
    const nic = { type, ...(from ? { source: from } : {}), ...(mac ? { mac } : {}), ...(model ? { model } : {}) };
    return Value.Check(DomainNic, nic) ? [nic] : [];
  });
}

/** The devices of libvirt's domain XML that virtbus' config holds: disks, NICs and a VNC display (with its video card). */
export function configFromDomainXml(xml: string): Pick<DomainConfig, 'disks' | 'nics'> & Partial<Pick<DomainConfig, 'graphics'>> {
  const devices = first(xml, 'devices')?.body ?? '';
  const vnc = elements(devices, 'graphics').find(({ attrs }) => attrs['type'] === 'vnc');
  const video = first(devices, 'video') && first(first(devices, 'video')!.body, 'model')?.attrs['type'];
  return {
    disks: disksOf(devices),
    nics: nicsOf(devices),
    ...(vnc ? { graphics: { type: 'vnc' as const, ...(video === 'virtio' ? { video: 'virtio' as const } : video ? { video: 'std' as const } : {}) } } : {}),
  };
}

const attr = (value: string) => `'${escapeXml(value)}'`;
const DISK_BUS = { virtio: 'virtio', sata: 'sata', ide: 'ide' } as const;

/** One `<disk>` of libvirt's domain XML, for define and for hotplug: a host file, or a volume of libvirt's pool of that name (one the agent left unresolved). */
export function diskXml(disk: DomainDisk, target: string): string {
  const source = 'path' in disk.source ? `<source file=${attr(disk.source.path)}/>` : `<source pool=${attr(disk.source.pool)} volume=${attr(disk.source.volume)}/>`;
  return (
    `<disk type='${'path' in disk.source ? 'file' : 'volume'}' device='${disk.device ?? 'disk'}'><driver name='qemu' type='${disk.format ?? 'qcow2'}'/>${source}` +
    `<target dev=${attr(target)} bus='${DISK_BUS[disk.bus ?? 'virtio']}'/>${disk.readonly || disk.device === 'cdrom' ? '<readonly/>' : ''}</disk>`
  );
}

/** One `<interface>` for define and for hotplug: user, bridge, or the libvirt host's network of that name. */
export function nicXml(nic: DomainNic, mac: string): string {
  const source = nic.type === 'bridge' ? `<source bridge=${attr(nic.source ?? '')}/>` : nic.type === 'network' ? `<source network=${attr(nic.source ?? 'default')}/>` : '';
  return `<interface type='${nic.type}'>${source}<mac address=${attr(mac)}/><model type='${nic.model ?? 'virtio'}'/></interface>`;
}

/** The first `<disk>` or `<interface>` of a domain's XML whose parts `match` accepts, as libvirt wrote it (what detach and update name a device by). */
export function deviceElement(xml: string, name: 'disk' | 'interface', match: (body: string) => boolean): string | undefined {
  for (const [whole, , body] of xml.matchAll(new RegExp(`<${name}(\\s[^>]*?)?(?:/>|>([\\s\\S]*?)</${name}>)`, 'g'))) if (match(body ?? '')) return whole;
  return undefined;
}

/** The target (`vda`) of a `<disk>` body, the MAC of an `<interface>` body. */
export const diskTargetOf = (body: string) => first(body, 'target')?.attrs['dev'];
export const macOf = (body: string) => first(body, 'mac')?.attrs['address']?.toLowerCase();
/** The image a `<disk>` reads now: its own first `<source>` (a `<backingStore>` comes after it). */
export const diskSourceOf = (disk: string) => first(disk, 'source')?.attrs['file'] ?? first(disk, 'source')?.attrs['dev'];

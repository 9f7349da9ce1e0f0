import { join } from 'node:path';
import { VirtError } from '@virtbus/api-contract';
import type { DomainRecord, GraphicsCapability, GraphicsSession } from '../driver.js';
import { pngFromPpm } from '../png.js';
import { connectVnc, MAX_SCREENSHOT_BYTES } from '../qemu/graphics.js';
import type { LibvirtDomainAccess } from './libvirt-hotplug.js';
import { escapeXml } from './domain-xml.js';
import { AffectFlag, KeycodeSet } from './protocol.js';

/** The largest raw screen libvirt may stream (a 4K PPM is 25 MB). */
const MAX_SCREEN_STREAM_BYTES = 32 * 1024 * 1024;
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47]);

/** QEMU's QKeyCode names (the contract's key names) to Linux input key codes (virsh send-key --codeset linux). */
const LINUX_KEYCODES: Readonly<Record<string, number>> = {
  esc: 1, ...Object.fromEntries([...'1234567890'].map((key, i) => [key, 2 + i])), minus: 12, equal: 13, backspace: 14, tab: 15,
  ...Object.fromEntries([...'qwertyuiop'].map((key, i) => [key, 16 + i])), bracket_left: 26, bracket_right: 27, ret: 28, ctrl: 29,
  ...Object.fromEntries([...'asdfghjkl'].map((key, i) => [key, 30 + i])), semicolon: 39, apostrophe: 40, grave_accent: 41, shift: 42, backslash: 43,
  ...Object.fromEntries([...'zxcvbnm'].map((key, i) => [key, 44 + i])), comma: 51, dot: 52, slash: 53, shift_r: 54, kp_multiply: 55, alt: 56, spc: 57, caps_lock: 58,
  ...Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`f${i + 1}`, 59 + i])), num_lock: 69, scroll_lock: 70,
  kp_7: 71, kp_8: 72, kp_9: 73, kp_subtract: 74, kp_4: 75, kp_5: 76, kp_6: 77, kp_add: 78, kp_1: 79, kp_2: 80, kp_3: 81, kp_0: 82, kp_decimal: 83,
  less: 86, f11: 87, f12: 88, kp_enter: 96, ctrl_r: 97, kp_divide: 98, sysrq: 99, print: 99, alt_r: 100, home: 102, up: 103, pgup: 104, left: 105, right: 106,
  end: 107, down: 108, pgdn: 109, insert: 110, delete: 111, pause: 119, meta_l: 125, meta_r: 126, menu: 127,
};

export interface LibvirtGraphicsHooks extends Pick<LibvirtDomainAccess, 'connection' | 'lookup'> {
  /** libvirt's live XML of the running domain (with its VNC password when `secure`). */
  liveXml(domain: DomainRecord, secure?: boolean): Promise<string>;
  /** Where libvirtd's file system root is seen from the agent ('' when they share it); undefined: libvirtd is remote (TLS). */
  root(): string | undefined;
}

/**
 * Graphics of libvirt QEMU domains: viewers relayed from the VNC unix socket libvirt placed in the domain's directory
 * (libvirtd on the agent's host), screenshots through virDomainScreenshot's stream (QEMU's PPM made PNG), keys through
 * virDomainSendKey in the Linux codeset.
 */
export class LibvirtGraphics implements GraphicsCapability {
  constructor(private readonly hooks: LibvirtGraphicsHooks) {}

  async openGraphics(domain: DomainRecord): Promise<GraphicsSession> {
    const root = this.hooks.root();
    // libvirt hands a remote client the VNC server only as a file descriptor (virDomainOpenGraphicsFD), which TLS cannot carry
    if (root === undefined) throw new VirtError('OPERATION_UNSUPPORTED', `the VNC viewer of ${domain.config.name} needs libvirtd on the agent's host (a unix URI), not over TLS`);
    const socket = /<graphics type='vnc'[^>]*>\s*<listen type='socket' socket='([^']+)'/.exec(await this.hooks.liveXml(domain))?.[1];
    if (!socket) throw new VirtError('OPERATION_INVALID', `domain ${domain.config.name} runs without a VNC unix socket (define it with graphics.type vnc; the change applies at its next start)`);
    return connectVnc(join(root || '/', socket), `VNC server of ${domain.config.name}`);
  }

  async screenshot(domain: DomainRecord): Promise<Buffer> {
    const dom = await this.hooks.lookup(domain);
    const { reply, data } = await this.hooks.connection().readStream('domainScreenshot', { dom, screen: 0, flags: 0 }, MAX_SCREEN_STREAM_BYTES);
    const png = data.subarray(0, 4).equals(PNG_SIGNATURE) ? data : pngFromPpm(data);
    if (png.length > MAX_SCREENSHOT_BYTES) throw new VirtError('OPERATION_FAILED', `screenshot of ${domain.config.name} (${reply.mime ?? 'no type'}) is ${png.length} bytes as PNG, more than one reply holds`);
    return png;
  }

  async sendKey(domain: DomainRecord, keys: readonly string[], holdTimeMs: number): Promise<void> {
    const keycodes = keys.map((key) => {
      const code = LINUX_KEYCODES[key];
      if (code === undefined) throw new VirtError('INVALID_ARG', `send-key: unknown key ${JSON.stringify(key)}`);
      return code;
    });
    await this.hooks.connection().call('domainSendKey', { dom: await this.hooks.lookup(domain), codeset: KeycodeSet.LINUX, holdtime: holdTimeMs, keycodes, flags: 0 });
  }

  /** A new VNC password on the running domain (virDomainUpdateDeviceFlags); a server started without one keeps none until its next start. */
  async setPassword(domain: DomainRecord, password: string): Promise<void> {
    const xml = await this.hooks.liveXml(domain, true);
    const graphics = /<graphics type='vnc'[^>]*>[\s\S]*?<\/graphics>/.exec(xml)?.[0];
    if (!graphics || !/passwd=/.test(graphics)) return;
    const changed = graphics.replace(/passwd='[^']*'/, `passwd='${escapeXml(password)}'`);
    await this.hooks.connection().call('domainUpdateDeviceFlags', { dom: await this.hooks.lookup(domain), xml: changed, flags: AffectFlag.LIVE });
  }
}

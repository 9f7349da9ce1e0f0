import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const BUILD_SCRIPT = fileURLToPath(new URL('../../../tools/guest/build.sh', import.meta.url));

/** Strings the test guest prints on its serial console (ttyS0). */
export const GUEST_MARKERS = {
  ready: 'GUEST-READY',
  /** Booted with `agentInitrd` and the domain has the org.qemu.guest_agent.0 channel: qemu-ga runs. */
  guestAgent: 'GUEST-AGENT',
  powerOff: 'GUEST-POWEROFF',
  /** Followed by a space and the IPv4 address, e.g. `GUEST-IP 10.0.2.15`. */
  ip: 'GUEST-IP',
  dhcpFailed: 'GUEST-DHCP-FAILED',
  /** Followed by a space and an increasing number, every 0.5 s. */
  counter: 'COUNTER',
  /** `virtbus.nocloud=1` applied the cloud-init seed: followed by ` hostname=NAME users=A,B`. */
  nocloudDone: 'NOCLOUD-DONE',
  /** `virtbus.nocloud=1` found no cdrom labelled cidata. */
  nocloudNoSeed: 'NOCLOUD-NO-SEED',
  /** `virtbus.sshd=1`: dropbear listens on port 22 (public-key logins only; host keys made at the first connection). */
  sshd: 'GUEST-SSHD',
  /** Printed by syslinux on ttyS0 when the guest boots from its disk (disk.qcow2). */
  bootloader: 'SYSLINUX',
  kvmStubReady: 'KVM-STUB-READY',
  kvmStubPowerOff: 'KVM-STUB-POWEROFF',
} as const;

/**
 * What /init draws on the VGA text console (80x25; vgacon, tty1) after boot: a block of red-background cells, the
 * cursor hidden, so a test finds it in a screenshot or a VNC canvas without OCR (cell size = width / 80, height / 25).
 */
export const GUEST_VGA_MARKER = { columns: 80, rows: 25, block: { column: 2, row: 1, width: 20, height: 4 }, rgb: [170, 0, 0] } as const;

/** Kernel command-line flags the guest's /init understands; append them to `cmdline`. */
export const GUEST_FLAGS = {
  dhcp: 'virtbus.net=dhcp',
  counter: 'virtbus.counter=1',
  /** Apply the NoCloud seed of a cdrom labelled cidata (hostname, users and their SSH keys), then print NOCLOUD-DONE. */
  nocloud: 'virtbus.nocloud=1',
  /** Start dropbear on port 22, then print GUEST-SSHD. */
  sshd: 'virtbus.sshd=1',
} as const;

export interface TestGuest {
  readonly dir: string;
  /** Debian cloud kernel bzImage; boot it under TCG (`-accel tcg -cpu max`). */
  readonly kernel: string;
  readonly initrd: string;
  /** initrd plus qemu-ga, started when the domain has the org.qemu.guest_agent.0 channel (`GUEST-AGENT` on ttyS0). */
  readonly agentInitrd: string;
  /** 32-bit multiboot stub for `-accel kvm -cpu qemu64` (a Linux kernel cannot run under this host's KVM). */
  readonly kvmStub: string;
  /** The same kernel and initramfs on a BIOS-bootable qcow2 disk (syslinux; cmdline `diskCmdline`), like a cloud image. */
  readonly disk: string;
  readonly cmdline: string;
  /** What the disk's bootloader passes: `cmdline` plus the dhcp, nocloud and sshd flags. */
  readonly diskCmdline: string;
  readonly kernelRelease: string;
}

interface GuestManifest {
  kernel: { package: string; release: string };
  cmdline: string;
  diskCmdline: string;
}

export class GuestBuildError extends Error {
  override readonly name = 'GuestBuildError';
}

let pending: Promise<TestGuest> | undefined;

/** Builds (or reuses the cached) test guest; the build script runs at most once per process. */
export function ensureTestGuest(): Promise<TestGuest> {
  pending ??= buildTestGuest().catch((error: unknown) => {
    pending = undefined;
    throw error;
  });
  return pending;
}

async function buildTestGuest(): Promise<TestGuest> {
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync('bash', [BUILD_SCRIPT], { maxBuffer: 1024 * 1024, timeout: 300_000 }));
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new GuestBuildError(`tools/guest/build.sh failed: ${stderr.trim()}`, { cause: error });
  }
  const dir = stdout.trim().split('\n').pop() ?? '';
  if (!dir.startsWith('/')) throw new GuestBuildError(`tools/guest/build.sh printed no output directory: ${stdout}`);
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as GuestManifest;
  return {
    dir,
    kernel: join(dir, 'vmlinuz'),
    initrd: join(dir, 'initramfs.gz'),
    agentInitrd: join(dir, 'initramfs-agent.gz'),
    kvmStub: join(dir, 'kvm-stub.elf'),
    disk: join(dir, 'disk.qcow2'),
    cmdline: manifest.cmdline,
    diskCmdline: manifest.diskCmdline,
    kernelRelease: manifest.kernel.release,
  };
}

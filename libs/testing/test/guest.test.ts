import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureTestGuest } from '../src/index.js';

// Builds (or reuses) the cached guest; booting it is the QEMU driver tests' job.
describe('ensureTestGuest', () => {
  it('returns the kernel, initramfs and KVM stub with a parseable manifest', async () => {
    const guest = await ensureTestGuest();
    for (const file of [guest.kernel, guest.initrd, guest.kvmStub]) {
      expect((await stat(file)).size, file).toBeGreaterThan(0);
    }
    const manifest = JSON.parse(await readFile(join(guest.dir, 'manifest.json'), 'utf8')) as {
      kernel: { release: string };
      cmdline: string;
      files: Record<string, { sha256: string }>;
    };
    expect(manifest.kernel.release).toBe(guest.kernelRelease);
    expect(guest.cmdline).toContain('console=ttyS0');
    expect(Object.keys(manifest.files).sort()).toEqual(['disk.qcow2', 'initramfs-agent.gz', 'initramfs.gz', 'kvm-stub.elf', 'vmlinuz']);
    for (const { sha256 } of Object.values(manifest.files)) expect(sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('runs the build once per process', async () => {
    expect(ensureTestGuest()).toBe(ensureTestGuest());
  });
});

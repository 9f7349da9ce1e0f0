import { execFile, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { builtBundle, ensureTestGuest, GUEST_MARKERS, hasBinaryOrSkip, type TestGuest } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCliStack, type CliStack } from './support/stack.js';

// docs/GETTING-STARTED.md, step by step, with the built `virtbus` as a user runs it; the image is the project's own
// bootable test disk (tools/guest/build.sh: disk.qcow2) in place of a distribution's cloud image.
const TOOLS = ['qemu-system-x86_64', 'qemu-img', 'genisoimage', 'dnsmasq', 'nft', 'nsenter', 'syslinux', 'mcopy', 'mkfs.vfat', 'ssh', 'ssh-keygen'].every((tool) =>
  hasBinaryOrSkip(tool),
);
const BOOT_WAIT_MS = 150_000;

let stack: CliStack | undefined;
let guest: TestGuest;

/** The built CLI in its own process, as the page's commands run (the gateway lives in this process: asynchronous). */
async function virtbus(...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [builtBundle('virtbus'), '--url', stack!.gatewayUrl, ...args], { cwd: stack!.workDir, timeout: 120_000 });
  return stdout.trimEnd();
}

describe.skipIf(!TOOLS)('docs/GETTING-STARTED.md: a cloud image with cloud-init user-data, booted from its disk, reached by console and by ssh at its DHCP address', () => {
  beforeAll(async () => {
    guest = await ensureTestGuest();
    // the agent in a network namespace of its own: the page's NAT network never touches the host's
    stack = await startCliStack({ nodes: ['gs'], netns: true, drivers: 'qemu' });
  });

  afterAll(async () => {
    await stack?.close();
  });

  it('uploads the image, defines the VM from it with user-data, starts it, reads the applied user-data on the console, finds its address and logs in with ssh', { timeout: 300_000 }, async () => {
    const workDir = stack!.workDir;
    // 2. the image into the default pool
    expect(await virtbus('pool-list')).toMatch(/^default\s+dir\s+running/m);
    expect(await virtbus('vol-upload', '--create', 'default', 'debian-12.qcow2', guest.disk)).toMatch(/^Uploaded .* to default\/debian-12\.qcow2, sha256 [0-9a-f]{64}$/);
    expect(await virtbus('vol-info', 'default', 'debian-12.qcow2')).toMatch(/^Format:\s+qcow2$/m);

    // 3. a NAT network with DHCP
    await writeFile(
      join(workDir, 'default-net.json'),
      JSON.stringify({ name: 'default', mode: 'nat', autostart: true, ipv4: { address: '192.168.122.1/24', dhcp: { ranges: [{ start: '192.168.122.100', end: '192.168.122.200' }] } } }),
    );
    expect(await virtbus('net-define', 'default-net.json')).toMatch(/^Network default defined/);
    expect(await virtbus('net-start', 'default')).toBe('Network default started');

    // 4. define from the image with the user-data (the page's file, with a key made for the test)
    await promisify(execFile)('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ops@getting-started', '-f', join(workDir, 'id_ed25519')]);
    const KEY = (await readFile(join(workDir, 'id_ed25519.pub'), 'utf8')).trim();
    await writeFile(
      join(workDir, 'user-data'),
      ['#cloud-config', 'hostname: web-1', 'users:', '  - name: ops', '    sudo: ALL=(ALL) NOPASSWD:ALL', '    shell: /bin/bash', '    ssh_authorized_keys:', `      - ${KEY}`, ''].join('\n'),
    );
    await virtbus('define-from-image', '--name', 'web-1', '--driver', 'qemu', '--image', 'default/debian-12.qcow2', '--memory', '256', '--vcpus', '1', '--root-size', '64M', '--network', 'default', '--user-data', 'user-data');
    const disks = (await virtbus('domblklist', 'web-1')).split('\n').slice(2);
    expect(disks).toEqual([expect.stringMatching(/^vda\s+default\/web-1-root\.qcow2$/), expect.stringMatching(/^hda\s+default\/web-1-cidata\.iso$/)]);
    const config = JSON.parse(await virtbus('dumpconfig', 'web-1')) as { os: { kernel?: string }; nics: { type: string; source: string }[] };
    // booted from its disk by the BIOS and the disk's bootloader, as a cloud image is
    expect(config.os.kernel).toBeUndefined();
    expect(config.nics).toEqual([expect.objectContaining({ type: 'network', source: 'default' })]);

    // 5. start, list with its id, console
    expect(await virtbus('start', 'web-1')).toBe("Domain 'web-1' started: running (booted)");
    expect(await virtbus('list')).toMatch(/^\d+\s+web-1\s+running\s/m);
    const session = spawn(process.execPath, [builtBundle('virtbus'), '--url', stack!.gatewayUrl, 'console', 'web-1'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let screen = '';
    session.stdout.on('data', (chunk: Buffer) => (screen += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => session.once('exit', (code) => resolve(code)));
    const waitFor = async (pattern: RegExp, what: string) => {
      for (const deadline = Date.now() + BOOT_WAIT_MS; !pattern.test(screen) && Date.now() < deadline; ) await new Promise((resolve) => setTimeout(resolve, 200));
      if (!pattern.test(screen)) throw new Error(`no ${what} on the console; it shows:\n${screen.slice(-3000)}`);
      return pattern.exec(screen)!;
    };
    try {
      await waitFor(new RegExp(GUEST_MARKERS.ready), 'shell');
      expect(screen).toContain(GUEST_MARKERS.bootloader);
      expect(screen).toContain(`${GUEST_MARKERS.nocloudDone} hostname=web-1 users=ops`);
      const [, leased] = await waitFor(new RegExp(`${GUEST_MARKERS.ip} (\\S+)`), 'DHCP lease');
      // the user-data as the guest applied it, read back through the console
      session.stdin.write('echo "CHECK host=$(hostname) uid=$(id -u ops) home=$(stat -c %U:%a /home/ops/.ssh)"; cat /home/ops/.ssh/authorized_keys\n');
      await waitFor(/CHECK host=web-1 uid=1000 home=ops:700\r?\n/, 'user-data check');
      await waitFor(new RegExp(`^${KEY.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\r?$`, 'm'), 'authorized key');

      // the address a user would ssh to: the lease the network's dnsmasq gave the guest
      expect(leased).toMatch(/^192\.168\.122\.\d+$/);
      expect(await virtbus('domifaddr', 'web-1')).toMatch(new RegExp(`^\\S+\\s+52:54:00(:[0-9a-f]{2}){3}\\s+ipv4\\s+${leased!.replaceAll('.', '\\.')}/24$`, 'm'));

      // 5. ssh ops@ADDRESS with the key of the user-data (from the agent's network namespace, where the bridge is)
      await waitFor(new RegExp(GUEST_MARKERS.sshd), 'sshd');
      const ssh = await promisify(execFile)(
        'ip',
        ['netns', 'exec', stack!.netns!, 'ssh', '-i', join(workDir, 'id_ed25519'), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=30', `ops@${leased}`, 'id -un; hostname'],
        { timeout: 90_000 },
      );
      expect(ssh.stdout.split('\n').slice(0, 2)).toEqual(['ops', 'web-1']);

      // 6. day two: shutdown (ACPI power button), and the console ends by itself when the VM stops
      expect(await virtbus('shutdown', 'web-1')).toMatch(/^Domain 'web-1' shut down: /);
      expect(await Promise.race([exited, new Promise<string>((resolve) => setTimeout(() => resolve('still attached'), 60_000))])).toBe(0);
      expect(screen).toContain(GUEST_MARKERS.powerOff);
      expect(await virtbus('domstate', 'web-1', '--reason')).toBe('shutoff (shutdown)');
    } finally {
      session.kill('SIGKILL');
    }
    expect(await virtbus('undefine', 'web-1')).toBe("Domain 'web-1' has been undefined");
    for (const volume of ['web-1-root.qcow2', 'web-1-cidata.iso', 'debian-12.qcow2']) await virtbus('vol-delete', 'default', volume);
    await virtbus('net-destroy', 'default');
  });
});

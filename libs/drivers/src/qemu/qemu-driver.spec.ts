import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { DomainConfig } from '@virtbus/api-contract';
import { QemuDriver, stateFromStatus } from './qemu-driver.js';
import { testDomainConfig } from '@virtbus/testing';

const config: DomainConfig = testDomainConfig({
  name: 'vm',
  uuid: '6f1c1f5e-3a57-4a0b-8a34-3f0c1d9e2a10',
  driver: 'kvm',
});

describe('QemuDriver without a usable /dev/kvm', () => {
  const driver = new QemuDriver({ binary: '/bin/echo', kvmDevice: '/nonexistent/kvm' });

  it('refuses kvm domains but takes qemu (TCG) ones', () => {
    expect(() => driver.validate(config)).toThrow(expect.objectContaining({ code: 'OPERATION_UNSUPPORTED' }));
    expect(() => driver.validate({ ...config, driver: 'qemu' })).not.toThrow();
  });

  it('refuses a TPM where swtpm is not installed', () => {
    const noSwtpm = new QemuDriver({ binary: '/bin/echo', swtpmBinary: '/nonexistent/swtpm' });
    const tpm = { ...config, driver: 'qemu' as const, devices: { tpm: { model: 'tpm-crb' as const } } };
    expect(() => noSwtpm.validate(tpm)).toThrow(expect.objectContaining({ code: 'OPERATION_UNSUPPORTED', message: expect.stringMatching(/swtpm/) }));
    expect(() => noSwtpm.validate({ ...tpm, devices: {} })).not.toThrow();
  });

  it('says so in probe() and never offers accel:kvm', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'qemu-spec-'));
    try {
      await driver.init({ node: 'n', stateDir: dir, logger: pino({ level: 'silent' }), observedState: () => undefined, saveRuntime: async () => undefined });
      const info = await driver.probe();
      expect(info).toMatchObject({ available: true, domainTypes: ['qemu', 'kvm'] });
      expect(info.capabilities).toContain('accel:tcg');
      expect(info.capabilities).not.toContain('accel:kvm');
      expect(info.detail).toMatch(/not usable/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reports an absent binary as unavailable', async () => {
    const missing = new QemuDriver({ binary: '/nonexistent/qemu-system-x86_64' });
    await expect(missing.probe()).resolves.toMatchObject({ available: false });
  });

  it('accepts pool volumes and network/bridge NICs with a source, refuses container settings', () => {
    const qemu = { ...config, driver: 'qemu' as const };
    // Pool volumes are fine: the agent resolves them to paths before start.
    expect(() => driver.validate({ ...qemu, disks: [{ source: { pool: 'p', volume: 'v' } }] })).not.toThrow();
    expect(() => driver.validate({ ...qemu, nics: [{ type: 'network' }] })).toThrow(expect.objectContaining({ code: 'INVALID_ARG' }));
    expect(() => driver.validate({ ...qemu, nics: [{ type: 'network', source: 'default' }] })).not.toThrow();
    expect(() => driver.validate({ ...qemu, container: { rootfs: { path: '/r' } } })).toThrow(expect.objectContaining({ code: 'INVALID_ARG' }));
    expect(() => driver.validate({ ...qemu, driver: 'lxc' })).toThrow(expect.objectContaining({ code: 'OPERATION_UNSUPPORTED' }));
  });
});

describe('QemuDriver on a KVM where -cpu host dies at once', () => {
  it('falls back to qemu64 without crashing on the closed QMP pipe', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'qemu-spec-'));
    try {
      // a QEMU that closes its QMP stdin before greeting, then exits: answering the greeting hits EPIPE
      const binary = join(dir, 'qemu-system-x86_64');
      await writeFile(binary, `#!/bin/sh\n[ "$1" = --version ] && { echo 'QEMU emulator version 7.2.0'; exit 0; }\nexec 0<&-\necho '{"QMP": {"version": {}}}'\nsleep 0.3\nexit 1\n`);
      await chmod(binary, 0o755);
      const kvmDevice = join(dir, 'kvm');
      await writeFile(kvmDevice, '');
      const driver = new QemuDriver({ binary, kvmDevice });
      await driver.init({ node: 'n', stateDir: dir, logger: pino({ level: 'silent' }), observedState: () => undefined, saveRuntime: async () => undefined });
      const info = await driver.probe();
      expect(info.capabilities).toContain('accel:kvm');
      expect(info.detail).toContain('-cpu qemu64; -cpu host does not start here');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('stateFromStatus', () => {
  it('maps QEMU run states to libvirt states and reasons', () => {
    expect(stateFromStatus('running')).toEqual({ state: 'running', reason: 'unknown' });
    expect(stateFromStatus('paused')).toEqual({ state: 'paused', reason: 'user' });
    expect(stateFromStatus('prelaunch')).toEqual({ state: 'paused', reason: 'starting_up' });
    expect(stateFromStatus('io-error')).toEqual({ state: 'paused', reason: 'ioerror' });
    expect(stateFromStatus('guest-panicked')).toEqual({ state: 'crashed', reason: 'panicked' });
    expect(stateFromStatus('suspended')).toEqual({ state: 'pmsuspended', reason: 'unknown' });
  });
});

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { VirtError, type DomainCapabilities, type DomainDriver } from '@virtbus/api-contract';
import { Qmp } from './qmp/index.js';

/** Firmware files where Debian's ovmf package puts them (the first present one is reported). */
const OVMF_CODE = ['/usr/share/OVMF/OVMF_CODE_4M.fd', '/usr/share/OVMF/OVMF_CODE.fd', '/usr/share/ovmf/OVMF.fd'];
const PROBE_TIMEOUT_MS = 15_000;

/** The domain capabilities' device models: what the qemu driver builds a command line for (command-line.ts). */
const QEMU_DEVICES: DomainCapabilities['devices'] = { diskBuses: ['virtio', 'ide', 'sata'], nicModels: ['virtio', 'e1000', 'rtl8139'], videoModels: ['std', 'virtio'] };

/**
 * libvirt's QEMU capabilities probe: a QEMU with `-machine none` and the accelerator the domain type uses, asked over
 * QMP for its machines, named CPU models (usable on this host or not) and the expansion of `host` (kvm) or `max` (tcg).
 */
export async function probeQemuCapabilities(binary: string, driver: DomainDriver, machine: string | undefined): Promise<DomainCapabilities> {
  const accel = driver === 'kvm' ? 'kvm' : 'tcg';
  const dir = await mkdtemp(join(tmpdir(), 'virtbus-caps-'));
  const socket = join(dir, 'qmp.sock');
  const child = spawn(binary, ['-machine', 'none', '-accel', accel, '-nodefaults', '-no-user-config', '-display', 'none', '-S', '-qmp', `unix:${socket},server=on,wait=off`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => void (stderr = (stderr + chunk.toString()).slice(-2000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let qmp: Qmp | undefined;
  try {
    const deadline = Date.now() + PROBE_TIMEOUT_MS;
    while (!qmp) {
      if (child.exitCode !== null) throw new VirtError('OPERATION_FAILED', `QEMU (${accel}) exited while probing capabilities: ${stderr.trim()}`);
      if (Date.now() > deadline) throw new VirtError('OPERATION_TIMEOUT', 'QEMU did not open its QMP socket for the capabilities probe');
      qmp = existsSync(socket) ? await Qmp.connect(socket, { timeoutMs: 5_000 }).catch(() => undefined) : undefined;
      if (!qmp) await sleep(20);
    }
    const [machines, cpus, expansion] = await Promise.all([
      qmp.capabilities.queryMachines(),
      qmp.capabilities.queryCpuDefinitions(),
      qmp.capabilities.queryCpuModelExpansion('full', accel === 'kvm' ? 'host' : 'max').catch(() => undefined),
    ]);
    const chosen = machine ? machines.find((entry) => entry.name === machine || entry.alias === machine) : machines.find((entry) => entry['is-default']);
    if (machine && !chosen) throw new VirtError('OPERATION_UNSUPPORTED', `machine type ${machine} is not supported by ${binary}`);
    const efi = OVMF_CODE.find((path) => existsSync(path));
    return {
      driver,
      emulator: binary,
      accel,
      ...(chosen ? { machine: chosen.name } : {}),
      machines: machines
        .map((entry) => ({ name: entry.name, ...(entry.alias ? { alias: entry.alias } : {}), ...(entry['is-default'] ? { default: true } : {}), maxCpus: entry['cpu-max'], ...(entry.deprecated ? { deprecated: true } : {}) }))
        .sort((a, b) => a.name.localeCompare(b.name)),
      maxVcpus: chosen?.['cpu-max'] ?? 1,
      firmware: [{ type: 'bios', available: true }, { type: 'efi', available: efi !== undefined, ...(efi ? { path: efi } : {}) }],
      cpuModels: cpus
        .map((cpu) => {
          const missing = cpu['unavailable-features'] ?? [];
          return { name: cpu.name, usable: missing.length === 0, ...(missing.length ? { unavailableFeatures: missing } : {}), ...(cpu.deprecated ? { deprecated: true } : {}) };
        })
        .sort((a, b) => a.name.localeCompare(b.name)),
      ...(expansion
        ? { hostModel: { name: expansion.model.name, features: Object.entries(expansion.model.props ?? {}).filter(([, on]) => on === true).map(([name]) => name).sort() } }
        : {}),
      devices: QEMU_DEVICES,
    };
  } finally {
    qmp?.close();
    child.kill('SIGKILL');
    await exited;
    await rm(dir, { recursive: true, force: true });
  }
}

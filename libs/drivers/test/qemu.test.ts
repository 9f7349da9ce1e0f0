import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtError, type DomainConfig } from '@virtbus/api-contract';
import { QemuDriver } from '../src/index.js';
import { collectConsole, makeDriverContext, TestDomain, type Observation } from './support/driver-harness.js';
import { Qmp } from '../src/qemu/qmp/index.js';
import { ensureTestGuest, GUEST_MARKERS, hasBinaryOrSkip, kvmUnusableReason, testDomainConfig, type TestGuest, titleWithSkipReason, waitFor } from '@virtbus/testing';

const QEMU = hasBinaryOrSkip('qemu-system-x86_64');

class Domain extends TestDomain {
  get pid(): number {
    return this.runtime?.pid as number;
  }
}

/** A zombie waiting for its reaper counts as dead. */
function isAlive(pid: number): boolean {
  const state = readState(pid);
  return state !== undefined && state !== 'Z';
}

describe.skipIf(!QEMU)('qemu driver against real QEMU', () => {
  let guest: TestGuest;
  let stateDir: string;
  const domains = new Map<string, Domain>();
  const observed: Observation[] = [];
  const drivers: QemuDriver[] = [];
  const pids = new Set<number>();

  const newDriver = async () => {
    const driver = new QemuDriver();
    await driver.init(makeDriverContext(stateDir, domains, observed));
    drivers.push(driver);
    return driver;
  };
  const define = (name: string, config: Partial<DomainConfig> = {}) => {
    const domain = new Domain(testDomainConfig({ name, driver: 'qemu', memory: 128, ...config }));
    domains.set(domain.config.uuid, domain);
    return domain;
  };
  const start = async (driver: QemuDriver, domain: Domain, paused = false) => {
    const result = domain.apply(await driver.start(domain, { paused }));
    pids.add(domain.pid);
    return result;
  };
  const observedFor = (domain: Domain) => observed.filter((entry) => entry.uuid === domain.config.uuid).map((entry) => entry.change);

  beforeAll(async () => {
    guest = await ensureTestGuest();
    stateDir = await mkdtemp(join(tmpdir(), 'virtbus-qemu-'));
  });

  afterAll(async () => {
    for (const driver of drivers) await driver.close();
    for (const pid of pids) {
      if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    }
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  describe('a Linux guest under TCG (booted once, then once more by a fake reboot)', () => {
    let driver: QemuDriver;
    let linux: Domain;

    beforeAll(async () => {
      driver = await newDriver();
      // a data disk the guest reads, so block stats have something to count
      const disk = join(stateDir, 'linux-data.qcow2');
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '8M']);
      linux = define('linux,guest', {
        memory: 256,
        os: { kernel: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline },
        nics: [{ type: 'user' }],
        disks: [{ source: { path: disk }, format: 'qcow2' }],
      });
    });

    it('boots to GUEST-READY on the console and runs a typed command', async () => {
      const result = await start(driver, linux);
      expect(result).toMatchObject({ state: 'running', reason: 'booted', runtime: { pid: expect.any(Number), accel: 'tcg' } });
      expect(isAlive(linux.pid)).toBe(true);
      const console = collectConsole(await driver.openConsole(linux));
      await waitFor('GUEST-READY', () => console.text().includes(GUEST_MARKERS.ready));
      const session = await driver.openConsole(linux);
      session.write(Buffer.from('echo hello-virtbus\n'));
      await waitFor('the echo output', () => /(^|\n)hello-virtbus\r?\n/.test(console.text()));
      session.close();
    });

    it('reports host-side stats: block counters of the disk the guest read, and the guest memory figures of the balloon', async () => {
      const output = collectConsole(await driver.openConsole(linux));
      const session = await driver.openConsole(linux);
      session.write(Buffer.from('dd if=/dev/vda of=/dev/null bs=4096 count=256 && echo READ-$((40+2))\n'));
      await waitFor('the guest read its disk', () => output.text().includes('READ-42'));
      session.close();
      const stats = await driver.domainStats(linux, { deadlineMs: 5_000 });
      expect(stats).toMatchObject({ uuid: linux.config.uuid, state: 'running', memory: { maximumBytes: 256 * 1024 * 1024 }, vcpu: { current: 1, maximum: 1 } });
      expect(stats.cpu?.timeNs).toBeGreaterThan(0);
      expect(stats.memory?.rssBytes).toBeGreaterThan(0);
      expect(stats.memory?.currentBytes).toBe(256 * 1024 * 1024);
      expect(stats.vcpu?.list).toHaveLength(1);
      expect(stats.block).toHaveLength(1);
      expect(stats.block?.[0]).toMatchObject({ name: 'vda', path: join(stateDir, 'linux-data.qcow2') });
      expect(stats.block?.[0]?.readBytes).toBeGreaterThanOrEqual(256 * 4096);
      expect(stats.block?.[0]?.readRequests).toBeGreaterThan(0);
      // the first stats call switched on the balloon's polling; the guest driver answers within a few seconds
      const memory = await waitFor('balloon memory stats', async () => {
        const next = (await driver.domainStats(linux, { deadlineMs: 5_000 })).memory;
        return next?.usableBytes !== undefined && next;
      }, 30_000);
      console.info(`balloon stats: ${JSON.stringify(memory)}`);
      expect(memory.availableBytes).toBeGreaterThan(0);
      expect(memory.availableBytes).toBeLessThanOrEqual(256 * 1024 * 1024);
      expect(memory.unusedBytes).toBeGreaterThan(0);
      expect(memory.usableBytes).toBeLessThanOrEqual(memory.availableBytes!);
    });

    it('suspends and resumes', async () => {
      expect(linux.apply(await driver.suspend(linux))).toEqual({ state: 'paused', reason: 'user' });
      await expect(driver.queryStatus(linux)).resolves.toMatchObject({ status: 'paused', running: false });
      expect(linux.apply(await driver.resume(linux))).toEqual({ state: 'running', reason: 'unpaused' });
      await expect(driver.queryStatus(linux)).resolves.toMatchObject({ status: 'running', running: true });
      await expect(driver.resume(linux)).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    });

    it('is re-adopted by a restarted driver, console history and input included', async () => {
      const pid = linux.pid;
      await driver.close();
      driver = await newDriver();
      expect(linux.apply(await driver.adopt(linux))).toEqual({ state: 'running', reason: 'unpaused' });
      expect(driver.processes().get(linux.config.uuid)).toBe(pid);
      const session = await driver.openConsole(linux);
      const console = collectConsole(session);
      expect(console.text()).toContain('hello-virtbus');
      session.write(Buffer.from('echo again-$((6*7))\n'));
      await waitFor('the echo after adoption', () => console.text().includes('again-42'));
      session.close();
    });

    it('reboots (power button, then reset) back to GUEST-READY', async () => {
      const console = collectConsole(await driver.openConsole(linux));
      const readyBefore = console.text().split(GUEST_MARKERS.ready).length;
      expect(linux.apply(await driver.reboot(linux, { timeoutMs: 60_000 }))).toEqual({ state: 'running', reason: 'booted' });
      await waitFor('GUEST-READY after reboot', () => console.text().split(GUEST_MARKERS.ready).length > readyBefore);
      expect(isAlive(linux.pid)).toBe(true);
    });

    it('sees the guest power itself off as shutoff/shutdown', async () => {
      const pid = linux.pid;
      const session = await driver.openConsole(linux);
      const console = collectConsole(session);
      let closed = false;
      session.onClose(() => (closed = true));
      session.write(Buffer.from('poweroff -f\n'));
      await waitFor('the poweroff observation', () => linux.state === 'shutoff');
      expect(observedFor(linux).at(-1)).toEqual({ state: 'shutoff', reason: 'shutdown', runtime: null });
      expect(console.text()).toContain('poweroff -f');
      await waitFor('QEMU to exit', () => !isAlive(pid), 5_000);
      await waitFor('console sessions closing', () => closed, 5_000);
      await expect(driver.openConsole(linux)).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    });
  });

  describe('the multiboot stub under TCG (it powers off on the ACPI button)', () => {
    let driver: QemuDriver;
    let stub: Domain;

    beforeAll(async () => {
      driver = await newDriver();
      stub = define('tcg-stub', { memory: 64, os: { kernel: guest.kvmStub } });
    });

    const startAndWaitReady = async () => {
      await start(driver, stub);
      const console = collectConsole(await driver.openConsole(stub));
      await waitFor('KVM-STUB-READY', () => console.text().includes(GUEST_MARKERS.kvmStubReady), 30_000);
      return console;
    };

    it('shuts down through ACPI to shutoff/shutdown', async () => {
      const console = await startAndWaitReady();
      const pid = stub.pid;
      expect(stub.apply(await driver.shutdown(stub, { timeoutMs: 30_000 }))).toEqual({ state: 'shutoff', reason: 'shutdown', runtime: null });
      expect(console.text()).toContain(GUEST_MARKERS.kvmStubPowerOff);
      expect(isAlive(pid)).toBe(false);
    });

    it('finishes a poweroff that happened while no driver was watching', async () => {
      await startAndWaitReady();
      const pid = stub.pid;
      await driver.close();
      // Press the power button ourselves: the driver let go of the QMP socket.
      const qmp = await Qmp.connect(stub.runtime?.qmpSocket as string);
      const shutdownSeen = qmp.nextEvent('SHUTDOWN', () => true, 30_000, () => new Error('no SHUTDOWN event'));
      await qmp.lifecycle.systemPowerdown();
      await shutdownSeen.promise;
      qmp.close();
      expect(isAlive(pid)).toBe(true);
      driver = await newDriver();
      expect(stub.apply(await driver.adopt(stub))).toEqual({ state: 'shutoff', reason: 'shutdown', runtime: null });
      await waitFor('QEMU to exit', () => !isAlive(pid), 5_000);
    });
  });

  describe('domains without boot media (SeaBIOS only)', () => {
    let driver: QemuDriver;

    beforeAll(async () => {
      driver = await newDriver();
    });

    it('runs two domains in parallel and destroys them', async () => {
      const [a, b] = [define('bare-a'), define('bare-b')];
      await Promise.all([start(driver, a), start(driver, b, true)]);
      expect([a.state, b.state]).toEqual(['running', 'paused']);
      expect(a.pid).not.toBe(b.pid);
      await expect(driver.queryStatus(a)).resolves.toMatchObject({ status: 'running' });
      await expect(driver.queryStatus(b)).resolves.toMatchObject({ status: 'prelaunch' });
      const [pa, pb] = [a.pid, b.pid];
      const results = await Promise.all([driver.destroy(a), driver.destroy(b)]);
      expect(results).toEqual([
        { state: 'shutoff', reason: 'destroyed', runtime: null },
        { state: 'shutoff', reason: 'destroyed', runtime: null },
      ]);
      a.apply(results[0]!);
      b.apply(results[1]!);
      expect(isAlive(pa) || isAlive(pb)).toBe(false);
      await expect(driver.start(a, { paused: false }).then((result) => a.apply(result))).resolves.toMatchObject({ state: 'running' });
      pids.add(a.pid);
      a.apply(await driver.destroy(a));
      await driver.undefine(a);
    });

    it('fails a start whose runtime cannot be saved and ends its QEMU (the save runs beside the QMP handshake)', async () => {
      const spawned: number[] = [];
      const failing = new QemuDriver();
      await failing.init({
        ...makeDriverContext(stateDir, domains, observed),
        async saveRuntime(_uuid, runtime) {
          if (!runtime) return;
          spawned.push(runtime.pid as number);
          pids.add(runtime.pid as number);
          throw new Error('disk full');
        },
      });
      drivers.push(failing);
      const domain = define('unsaved');
      const failure = await failing.start(domain, { paused: false }).catch((error: unknown) => error);
      expect(VirtError.is(failure, 'OPERATION_FAILED')).toBe(true);
      expect((failure as Error).message).toMatch(/disk full/);
      expect(spawned).toHaveLength(1);
      expect(isAlive(spawned[0]!)).toBe(false);
      expect(failing.processes().has(domain.config.uuid)).toBe(false);
      // nothing of that run is left in the way of the next start
      domain.apply(await driver.start(domain, { paused: false }));
      pids.add(domain.pid);
      domain.apply(await driver.destroy(domain));
      await driver.undefine(domain);
    });

    it('times out a shutdown the guest ignores, or destroys it when forced', async () => {
      const domain = define('deaf');
      await start(driver, domain);
      const failure = await driver.shutdown(domain, { timeoutMs: 300 }).catch((error: unknown) => error);
      expect(VirtError.is(failure, 'OPERATION_TIMEOUT')).toBe(true);
      expect(isAlive(domain.pid)).toBe(true);
      const forced = await driver.shutdown(domain, { timeoutMs: 300, force: true });
      expect(domain.apply(forced)).toEqual({ state: 'shutoff', reason: 'destroyed', runtime: null });
    });

    it('reports a kill -9 of QEMU as shutoff/crashed', async () => {
      const domain = define('victim');
      await start(driver, domain);
      const pid = domain.pid;
      process.kill(pid, 'SIGKILL');
      await waitFor('the crash observation', () => observedFor(domain).length > 0, 10_000);
      expect(observedFor(domain)).toEqual([{ state: 'shutoff', reason: 'crashed', runtime: null }]);
      expect(domain.state).toBe('shutoff');
      expect(driver.processes().has(domain.config.uuid)).toBe(false);
    });

    it('answers stats within the deadline or fails with OPERATION_TIMEOUT when QEMU is frozen', async () => {
      const domain = define('frozen');
      await start(driver, domain);
      process.kill(domain.pid, 'SIGSTOP');
      try {
        const failure = await driver.domainStats(domain, { deadlineMs: 300 }).catch((error: unknown) => error);
        expect(VirtError.is(failure, 'OPERATION_TIMEOUT')).toBe(true);
      } finally {
        process.kill(domain.pid, 'SIGCONT');
      }
      await expect(driver.domainStats(domain, { deadlineMs: 5_000 })).resolves.toMatchObject({ vcpu: { current: 1 } });
      domain.apply(await driver.destroy(domain));
    });

    it('after an agent restart, adopts live QEMUs and reports the ones that died meanwhile', async () => {
      const [survivor, lost] = [define('survivor'), define('lost')];
      await Promise.all([start(driver, survivor), start(driver, lost, true)]);
      const survivorPid = survivor.pid;
      await driver.close();
      process.kill(lost.pid, 'SIGKILL');
      await waitFor('the lost QEMU to die', () => !isAlive(lost.pid), 5_000);
      const restarted = await newDriver();
      driver = restarted;
      expect(survivor.apply(await restarted.adopt(survivor))).toEqual({ state: 'running', reason: 'booted' });
      expect(lost.apply(await restarted.adopt(lost))).toEqual({ state: 'shutoff', reason: 'crashed', runtime: null });
      await expect(restarted.queryStatus(survivor)).resolves.toMatchObject({ status: 'running' });
      expect(survivor.apply(await restarted.destroy(survivor))).toMatchObject({ state: 'shutoff', reason: 'destroyed' });
      expect(isAlive(survivorPid)).toBe(false);
    });

    it('refuses what it cannot run', () => {
      // pool volumes are resolved to paths by the agent and network/bridge NICs to taps at start: only malformed ones are refused here
      expect(() => driver.validate({ ...define('pool').config, disks: [{ source: { pool: 'p', volume: 'v' } }] })).not.toThrow();
      expect(() => driver.validate({ ...define('bridged').config, nics: [{ type: 'bridge' }] })).toThrow(expect.objectContaining({ code: 'INVALID_ARG' }));
      expect(() => driver.validate({ ...define('lxc').config, driver: 'lxc' })).toThrow(expect.objectContaining({ code: 'OPERATION_UNSUPPORTED' }));
    });
  });

  describe('KVM', () => {
    const unusable = kvmUnusableReason();

    it.skipIf(unusable !== undefined)(titleWithSkipReason('starts a kvm domain (multiboot stub), sees it running over QMP and destroys it', unusable), async () => {
      const driver = await newDriver();
      const info = await driver.probe();
      expect(info).toMatchObject({ available: true, capabilities: expect.arrayContaining(['accel:kvm', 'accel:tcg']) });
      const stub = define('kvm-stub', { driver: 'kvm', memory: 64, os: { kernel: guest.kvmStub } });
      expect(await start(driver, stub)).toMatchObject({ state: 'running', runtime: { accel: 'kvm' } });
      const console = collectConsole(await driver.openConsole(stub));
      await waitFor('KVM-STUB-READY', () => console.text().includes(GUEST_MARKERS.kvmStubReady), 30_000);
      await expect(driver.queryStatus(stub)).resolves.toMatchObject({ status: 'running' });
      const pid = stub.pid;
      expect(stub.apply(await driver.destroy(stub))).toEqual({ state: 'shutoff', reason: 'destroyed', runtime: null });
      expect(isAlive(pid)).toBe(false);
    });
  });
});

function readState(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
  } catch {
    return undefined;
  }
}

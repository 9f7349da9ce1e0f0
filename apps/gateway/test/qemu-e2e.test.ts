import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { type Domain, type LifecycleEvent, type NodeInfo } from '@virtbus/api-contract';
import { type AgentProcess, collectBusEvents, ensureTestGuest, GUEST_MARKERS, hasBinaryOrSkip, kvmUnusableReason, type NatsServerHandle, spawnAgent, startNatsServer, type TestGuest, titleWithSkipReason, waitFor, openTestSocket } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../src/index.js';

const QEMU = hasBinaryOrSkip('qemu-system-x86_64');
const NODE = 'qnode';

let nats: NatsServerHandle;
let gateway: RunningGateway;
let nc: NatsConnection;
let workDir: string;
let guest: TestGuest;
let agent: AgentProcess | undefined;
const busEvents: LifecycleEvent[] = [];

const stateDir = () => join(workDir, 'agent');

async function api(method: string, path: string, body?: unknown) {
  const response = await fetch(`${gateway.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

async function changeState(id: string, change: Record<string, unknown>): Promise<Domain> {
  const response = await api('PUT', `/v1/nodes/${NODE}/domains/${id}/state`, change);
  expect(response.status, `${JSON.stringify(change)} → ${JSON.stringify(response.body)}`).toBe(200);
  return response.body as unknown as Domain;
}

async function getDomain(id: string): Promise<Domain> {
  const response = await api('GET', `/v1/nodes/${NODE}/domains/${id}`);
  expect(response.status).toBe(200);
  return response.body as unknown as Domain;
}

/** A domain's events in its node's sequence (a re-sent publish may reach plain subscribers after later ones). */
function eventsOf(uuid: string): string[] {
  return busEvents
    .filter((event) => event.uuid === uuid)
    .sort((a, b) => a.seq - b.seq)
    .map((event) => `${event.type}/${event.detail}`);
}

/** A console WebSocket through the gateway: everything received (history + live) and a way to type. */
interface ConsoleClient {
  text(): string;
  /** `code reason` once the gateway closed it. */
  closedWith(): string | undefined;
  type(keys: string): void;
  close(): Promise<void>;
}

async function openConsole(id: string): Promise<ConsoleClient> {
  const console = await openTestSocket(`${gateway.url.replace(/^http/, 'ws')}/v1/nodes/${NODE}/domains/${id}/console`);
  return {
    text: () => {
      const closedWith = console.closedWith();
      if (closedWith && !closedWith.startsWith('1000')) throw new Error(`console closed: ${closedWith}`);
      return console.received().toString('utf8');
    },
    type: (keys) => console.socket.send(Buffer.from(keys)),
    closedWith: console.closedWith,
    close: console.close,
  };
}

/** The QEMU pid the agent persisted in `<stateDir>/domains/<uuid>.json`. */
async function qemuPid(uuid: string): Promise<number> {
  const stored = JSON.parse(await readFile(join(stateDir(), 'domains', `${uuid}.json`), 'utf8')) as { runtime?: { pid?: number } };
  const pid = stored.runtime?.pid;
  expect(pid, 'runtime.pid in the state file').toBeGreaterThan(1);
  return pid!;
}

/** Alive and not a zombie (PID 1 here reaps orphans late). */
function processRunning(pid: number): boolean {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Live QEMU processes whose command line mentions this test's work dir. */
function ourQemus(): number[] {
  if (!workDir) return [];
  const found: number[] = [];
  for (const entry of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes('qemu-system') && cmdline.includes(workDir) && processRunning(Number(entry))) found.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

async function startAgent(): Promise<AgentProcess> {
  agent = await spawnAgent({ node: NODE, natsUrl: nats.url, stateDir: stateDir(), drivers: 'test,qemu' });
  return agent;
}

describe.skipIf(!QEMU)('QEMU domains through the gateway, a real agent process and NATS', () => {
  let linux: Domain;
  let bios: Domain;
  let kvmDetail: string | undefined;

  beforeAll(async () => {
    guest = await ensureTestGuest();
    nats = await startNatsServer();
    // Short path: QMP and console sockets live below it (unix socket paths are limited to 107 bytes).
    workDir = await mkdtemp('/tmp/vbq-');
    nc = await connect({ servers: nats.url });
    collectBusEvents(nc, busEvents);
    await startAgent();
    gateway = await startGateway({ nc, host: '127.0.0.1', port: 0, heartbeatMs: 500, discoveryWaitMs: 500 });
  }, 300_000);

  afterAll(async () => {
    // Whatever a failed test left running goes through the product first, then by pid.
    if (gateway && agent) {
      const listed = await api('GET', `/v1/nodes/${NODE}/domains`).catch(() => undefined);
      for (const domain of ((listed?.body?.domains ?? []) as Domain[]).filter((d) => d.state !== 'shutoff')) {
        await api('PUT', `/v1/nodes/${NODE}/domains/${domain.uuid}/state`, { action: 'destroy' }).catch(() => undefined);
      }
    }
    await gateway?.close();
    await agent?.stop();
    for (const pid of ourQemus()) process.kill(pid, 'SIGKILL');
    await nc?.close();
    await nats?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  }, 120_000);

  it('reports the qemu driver in the node info', async () => {
    const info = (await api('GET', `/v1/nodes/${NODE}`)).body as unknown as NodeInfo;
    const qemu = info.drivers.find((driver) => driver.name === 'qemu');
    expect(qemu?.available, qemu?.detail).toBe(true);
    if (!qemu!.capabilities.includes('accel:kvm')) kvmDetail = qemu!.detail;
  });

  it('starts a Linux guest (direct kernel boot, TCG) and a SeaBIOS-only domain in parallel', async () => {
    const defined = await Promise.all([
      api('POST', `/v1/nodes/${NODE}/domains`, {
        name: 'linux',
        driver: 'qemu',
        vcpus: 1,
        memory: 256,
        os: { kernel: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline },
      }),
      api('POST', `/v1/nodes/${NODE}/domains`, { name: 'bios', driver: 'qemu', vcpus: 1, memory: 64 }),
    ]);
    for (const response of defined) expect(response.status, JSON.stringify(response.body)).toBe(201);
    [linux, bios] = defined.map((response) => response.body as unknown as Domain) as [Domain, Domain];

    const begin = Date.now();
    const [linuxUp, biosUp] = await Promise.all([changeState('linux', { action: 'start' }), changeState('bios', { action: 'start' })]);
    console.info(`qemu-e2e: two domains started in parallel in ${Date.now() - begin} ms`);
    expect([linuxUp.state, linuxUp.reason]).toEqual(['running', 'booted']);
    expect([biosUp.state, biosUp.reason]).toEqual(['running', 'booted']);
    expect(processRunning(await qemuPid(linux.uuid))).toBe(true);
    expect(processRunning(await qemuPid(bios.uuid))).toBe(true);
    expect((await api('GET', `/v1/nodes/${NODE}/domains`)).body!.domains as Domain[]).toHaveLength(2);
  });

  it('boots to GUEST-READY on the console WebSocket and runs a typed command', async () => {
    const begin = Date.now();
    const console1 = await openConsole('linux');
    try {
      await waitFor('GUEST-READY on the console', () => console1.text().includes(GUEST_MARKERS.ready), 100_000);
      console.info(`qemu-e2e: GUEST-READY ${Date.now() - begin} ms after the console opened`);
      console1.type('echo hello-$((6*7))\n');
      await waitFor('hello-42 from the guest', () => console1.text().includes('hello-42'), 30_000);
    } finally {
      await console1.close();
    }
    // A second attach replays the history.
    const console2 = await openConsole('linux');
    try {
      await waitFor('the history', () => console2.text().includes('hello-42'), 10_000);
    } finally {
      await console2.close();
    }
  });

  it('suspends and resumes: paused vCPUs leave typed input unanswered until resume', async () => {
    const terminal = await openConsole('linux');
    try {
      await waitFor('the history', () => terminal.text().includes(GUEST_MARKERS.ready), 10_000);
      expect(await changeState('linux', { action: 'suspend' })).toMatchObject({ state: 'paused', reason: 'user' });
      expect((await getDomain('linux')).state).toBe('paused');
      terminal.type('echo paused-$((40+2))\n');
      await sleep(1_500);
      expect(terminal.text()).not.toContain('paused-42');
      expect(await changeState('linux', { action: 'resume' })).toMatchObject({ state: 'running', reason: 'unpaused' });
      await waitFor('the command typed while paused to run after resume', () => terminal.text().includes('paused-42'), 30_000);
    } finally {
      await terminal.close();
    }
    await waitFor('the events', () => eventsOf(linux.uuid).length >= 4, 10_000);
    expect(eventsOf(linux.uuid)).toEqual(['DEFINED/ADDED', 'STARTED/BOOTED', 'SUSPENDED/PAUSED', 'RESUMED/UNPAUSED']);
  });

  it('reboots and resets the guest through the API: the console shows a new boot each time', async () => {
    const terminal = await openConsole('linux');
    try {
      const boots = () => terminal.text().split(GUEST_MARKERS.ready).length - 1;
      await waitFor('the history', () => boots() >= 1, 10_000);
      const before = boots();
      const eventsBefore = eventsOf(linux.uuid).length;
      // reboot: ACPI power button, the guest powers off, QEMU stays and is reset (libvirt's fake reboot)
      expect(await changeState('linux', { action: 'reboot', timeout: 60 })).toMatchObject({ state: 'running' });
      await waitFor('GUEST-READY after the reboot', () => boots() > before, 100_000);
      const afterReboot = boots();
      // reset: the machine restarts at once, like pressing the reset button
      expect(await changeState('linux', { action: 'reset' })).toMatchObject({ state: 'running' });
      await waitFor('GUEST-READY after the reset', () => boots() > afterReboot, 100_000);
      terminal.type('echo reset-$((6*7))\n');
      await waitFor('the guest to answer after the reset', () => terminal.text().includes('reset-42'), 30_000);
      expect((await getDomain('linux')).state).toBe('running');
      // neither is a lifecycle change (libvirt reports them as REBOOT, not as stop/start)
      expect(eventsOf(linux.uuid).slice(eventsBefore)).toEqual([]);
    } finally {
      await terminal.close();
    }
    // two TCG boots: 51 s on an idle CI run, which the 120 s default left barely twice over; its own waits name the slow step
  }, 240_000);

  it('destroys the SeaBIOS domain; a kill -9 of its QEMU reports a crash', async () => {
    const pid = await qemuPid(bios.uuid);
    expect(await changeState('bios', { action: 'destroy' })).toMatchObject({ state: 'shutoff', reason: 'destroyed' });
    await waitFor('the destroyed QEMU to exit', () => !processRunning(pid), 10_000);

    expect(await changeState('bios', { action: 'start' })).toMatchObject({ state: 'running', reason: 'booted' });
    const second = await qemuPid(bios.uuid);
    process.kill(second, 'SIGKILL');
    await waitFor('shutoff/crashed', async () => (await getDomain('bios')).state === 'shutoff', 15_000);
    expect(await getDomain('bios')).toMatchObject({ state: 'shutoff', reason: 'crashed' });
    await waitFor('the crash event', () => eventsOf(bios.uuid).includes('STOPPED/CRASHED'), 10_000);
    expect(eventsOf(bios.uuid)).toEqual(['DEFINED/ADDED', 'STARTED/BOOTED', 'STOPPED/DESTROYED', 'STARTED/BOOTED', 'STOPPED/CRASHED']);
  });

  it('keeps the guest running when the agent is SIGKILLed; a new agent adopts it, types on its console and shuts it down', async () => {
    const pid = await qemuPid(linux.uuid);
    const old = agent!;
    await old.kill('SIGKILL');
    agent = undefined;
    await sleep(500);
    expect(processRunning(pid), 'QEMU outlives the agent').toBe(true);
    expect((await api('GET', `/v1/nodes/${NODE}/domains/linux`)).status).toBe(503);

    const begin = Date.now();
    await startAgent();
    console.info(`qemu-e2e: new agent ready (adopted) in ${Date.now() - begin} ms`);
    expect(await getDomain('linux')).toMatchObject({ state: 'running' });
    expect(await qemuPid(linux.uuid)).toBe(pid);

    const terminal = await openConsole('linux');
    try {
      terminal.type('echo adopted-$((6*7))\n');
      await waitFor('the adopted console to answer', () => terminal.text().includes('adopted-42'), 30_000);
    } finally {
      await terminal.close();
    }

    // a console left open ends with the domain, saying why
    const watcher = await openConsole('linux');
    const shutdownBegin = Date.now();
    expect(await changeState('linux', { action: 'shutdown', timeout: 60 })).toMatchObject({ state: 'shutoff', reason: 'shutdown' });
    await waitFor('the console to end with the domain', () => watcher.closedWith() !== undefined, 10_000);
    expect(watcher.closedWith()).toBe('1000 domain linux stopped (shutdown)');
    console.info(`qemu-e2e: ACPI shutdown took ${Date.now() - shutdownBegin} ms`);
    await waitFor('QEMU to exit', () => !processRunning(pid), 10_000);
    await waitFor('the shutdown event', () => eventsOf(linux.uuid).includes('STOPPED/SHUTDOWN'), 10_000);
    expect(eventsOf(linux.uuid).slice(-1)).toEqual(['STOPPED/SHUTDOWN']);
  });

  it('autostarts a domain marked autostart when the agent starts', async () => {
    const eventsBefore = eventsOf(linux.uuid).length;
    const updated = await api('PUT', `/v1/nodes/${NODE}/domains/linux`, { autostart: true });
    expect(updated.status, JSON.stringify(updated.body)).toBe(200);
    expect(updated.body).toMatchObject({ autostart: true, state: 'shutoff' });
    await agent!.stop();
    agent = undefined;
    await startAgent();
    // the agent starts autostart domains before it serves requests
    expect(await getDomain('linux')).toMatchObject({ state: 'running', reason: 'booted', autostart: true });
    const pid = await qemuPid(linux.uuid);
    const terminal = await openConsole('linux');
    try {
      // typed again until the booting guest's shell reads it (keys sent before the serial port is open are lost)
      let typedAt = 0;
      await waitFor('the autostarted guest to answer', () => {
        if (terminal.text().includes('autostarted-42')) return true;
        if (Date.now() - typedAt > 2_000) {
          terminal.type('echo autostarted-$((6*7))\n');
          typedAt = Date.now();
        }
        return false;
      }, 100_000);
    } finally {
      await terminal.close();
    }
    expect(await changeState('linux', { action: 'destroy' })).toMatchObject({ state: 'shutoff', reason: 'destroyed' });
    await waitFor('QEMU to exit', () => !processRunning(pid), 10_000);
    expect((await api('PUT', `/v1/nodes/${NODE}/domains/linux`, { autostart: false })).body).toMatchObject({ autostart: false });
    await waitFor('the events', () => eventsOf(linux.uuid).length >= eventsBefore + 4, 10_000);
    const trail = busEvents.filter((event) => event.uuid === linux.uuid).map((event) => `${event.seq} ${event.type}/${event.detail} ${event.timestamp}`);
    expect(eventsOf(linux.uuid).slice(eventsBefore), trail.join('; ')).toEqual(['DEFINED/UPDATED', 'STARTED/BOOTED', 'STOPPED/DESTROYED', 'DEFINED/UPDATED']);
  });

  const kvmUnusable = kvmUnusableReason();
  it.skipIf(kvmUnusable !== undefined)(titleWithSkipReason('starts, runs and destroys a kvm domain (multiboot stub)', kvmUnusable), async () => {
    // /dev/kvm opens here, so the driver must offer it too
    expect(kvmDetail).toBeUndefined();
    const defined = await api('POST', `/v1/nodes/${NODE}/domains`, { name: 'kvm-stub', driver: 'kvm', vcpus: 1, memory: 32, os: { kernel: guest.kvmStub } });
    expect(defined.status, JSON.stringify(defined.body)).toBe(201);
    const stub = defined.body as unknown as Domain;
    const begin = Date.now();
    expect(await changeState('kvm-stub', { action: 'start' })).toMatchObject({ state: 'running', reason: 'booted' });
    console.info(`qemu-e2e: kvm domain running in ${Date.now() - begin} ms`);
    const pid = await qemuPid(stub.uuid);
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toEqual(expect.arrayContaining(['kvm']));
    const terminal = await openConsole('kvm-stub');
    try {
      await waitFor('the stub on COM1', () => terminal.text().includes(GUEST_MARKERS.kvmStubReady), 30_000);
      console.info(`qemu-e2e: ${GUEST_MARKERS.kvmStubReady} ${Date.now() - begin} ms after start`);
    } finally {
      await terminal.close();
    }
    expect((await getDomain('kvm-stub')).state).toBe('running');
    expect(await changeState('kvm-stub', { action: 'destroy' })).toMatchObject({ state: 'shutoff', reason: 'destroyed' });
    await waitFor('the kvm QEMU to exit', () => !processRunning(pid), 10_000);
    await waitFor('the destroy event', () => eventsOf(stub.uuid).includes('STOPPED/DESTROYED'), 10_000);
    expect(eventsOf(stub.uuid)).toEqual(['DEFINED/ADDED', 'STARTED/BOOTED', 'STOPPED/DESTROYED']);
  });

  it('leaves no QEMU process behind', async () => {
    await waitFor('every QEMU of this test to exit', () => ourQemus().length === 0, 10_000).catch(() => undefined);
    expect(ourQemus()).toEqual([]);
  });
});

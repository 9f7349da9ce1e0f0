import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DomainConfig } from '@virtbus/api-contract';
import { LxcDriver, type RunState } from '../src/index.js';
import { collectConsole, makeDriverContext, TestDomain, type Observation } from './support/driver-harness.js';
import { cgroupDirsNamed, ensureBusyboxRootfs, hasBinaryOrSkip, processesMentioning, rejectsWith, ROOTFS_MARKERS, testDomainConfig, waitFor } from '@virtbus/testing';

const LXC = hasBinaryOrSkip('lxc-start');
const MIB = 1024 * 1024;

class Domain extends TestDomain {
  get initPid(): number {
    return this.runtime?.initPid as number;
  }
}

function sessionOf(pid: number): { pgid: number; sid: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return { pgid: Number(fields[2]), sid: Number(fields[3]) };
}

function ppidOf(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
}

function containerConfig(rootfs: string, overrides: Partial<DomainConfig> & { container?: Partial<NonNullable<DomainConfig['container']>> } = {}): DomainConfig {
  const { container, ...rest } = overrides;
  return testDomainConfig({ name: `lxc-${randomUUID().slice(0, 8)}`, driver: 'lxc', memory: 32, ...rest, container: { rootfs: { path: rootfs }, ...container } });
}

describe.skipIf(!LXC)('lxc driver (real LXC, busybox rootfs)', () => {
  const domains = new Map<string, Domain>();
  const observed: Observation[] = [];
  let stateDir: string;
  let rootfs: string;
  let driver: LxcDriver;
  let main: Domain;
  const pivotsBefore = new Set<string>();

  beforeAll(async () => {
    for (const pivot of cgroupDirsNamed('lxc.pivot')) pivotsBefore.add(pivot);
    rootfs = await ensureBusyboxRootfs();
    stateDir = await mkdtemp(join(tmpdir(), 'virtbus-lxc-'));
    driver = new LxcDriver({ watchIntervalMs: 200 });
    await driver.init(makeDriverContext(stateDir, domains, observed));
    main = new Domain(containerConfig(rootfs, { container: { rootfs: { path: rootfs }, hostname: 'vb-box', env: { GREETING: 'hello' }, pidsLimit: 64 } }));
    domains.set(main.config.uuid, main);
  });

  afterAll(async () => {
    // Whatever a failed test left running goes, through a fresh driver in case the first one was closed.
    const cleaner = new LxcDriver();
    await cleaner.init(makeDriverContext(stateDir, new Map(), []));
    for (const domain of domains.values()) {
      const state = await cleaner.adopt(domain).catch(() => undefined);
      if (state && state.state !== 'shutoff') await cleaner.destroy({ ...domain, state: state.state, reason: state.reason }).catch(() => undefined);
    }
    await cleaner.close();
    await driver?.close();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  it('probes LXC and refuses configs it cannot run', async () => {
    const info = await driver.probe();
    expect(info.available, info.detail).toBe(true);
    expect(info.capabilities).toEqual(expect.arrayContaining(['console', 'stats', 'exec']));
    const pooled = containerConfig(rootfs);
    // a pool volume rootfs is valid: the agent resolves it to a path before start (apps/agent/test/provisioning.test.ts runs one)
    driver.validate({ ...pooled, container: { rootfs: { pool: 'default', volume: 'root' } } });
    expect(() => driver.validate({ ...pooled, container: undefined })).toThrow(expect.objectContaining({ code: 'INVALID_ARG' }));
    expect(() => driver.validate({ ...pooled, nics: [{ type: 'bridge', source: 'vb-no-such-br0' }] })).toThrow(expect.objectContaining({ code: 'INVALID_ARG' }));
    expect(() => driver.validate({ ...pooled, nics: [{ type: 'user' }] })).toThrow(expect.objectContaining({ code: 'OPERATION_UNSUPPORTED' }));
    expect(() => driver.validate({ ...pooled, driver: 'qemu' })).toThrow(expect.objectContaining({ code: 'OPERATION_UNSUPPORTED' }));
    driver.validate(main.config);
  });

  function pidsCgroupDir(): string {
    const dirs = main.runtime?.cgroupDirs as string[];
    const pidsDir = dirs.find((dir) => dir.includes('/pids/')) ?? dirs.find((dir) => existsSync(join(dir, 'cgroup.threads')));
    if (!pidsDir) throw new Error(`no pids cgroup among ${dirs.join(', ')}`);
    return pidsDir;
  }

  const pidsCurrentFile = () => Number(readFileSync(join(pidsCgroupDir(), 'pids.current'), 'utf8'));

  /** Tasks in the container's pids cgroup and below it (what pids.current counts, zombies aside), as `pid:comm`. */
  function containerTasks(): string[] {
    const pidsDir = pidsCgroupDir();
    const tasks: string[] = [];
    const walk = (dir: string) => {
      const file = existsSync(join(dir, 'tasks')) ? 'tasks' : 'cgroup.threads';
      for (const tid of readFileSync(join(dir, file), 'utf8').split('\n').filter(Boolean)) {
        let comm = 'exited';
        try {
          comm = readFileSync(`/proc/${tid}/comm`, 'utf8').trim();
        } catch {
          // ended between the two reads
        }
        tasks.push(`${tid}:${comm}`);
      }
      for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) walk(join(dir, entry.name));
    };
    walk(pidsDir);
    return tasks;
  }

  it('starts a busybox container whose monitor lives outside the agent session', async () => {
    const started = Date.now();
    expect(main.apply(await driver.start(main, { paused: false }))).toMatchObject({ state: 'running', reason: 'booted' });
    const startMs = Date.now() - started;
    expect(main.initPid).toBeGreaterThan(1);
    const monitor = ppidOf(main.initPid);
    const ours = sessionOf(process.pid);
    const theirs = sessionOf(monitor);
    expect(theirs.sid).not.toBe(ours.sid);
    expect(theirs.pgid).not.toBe(ours.pgid);
    console.info(`lxc: start took ${startMs} ms (init ${main.initPid}, monitor ${monitor})`);
  });

  it('shows the console: history, live output and keystrokes', async () => {
    const session = await driver.openConsole(main);
    const output = collectConsole(session);
    await waitFor('the container to boot', () => output.text().includes(ROOTFS_MARKERS.ready));
    session.write(Buffer.from('echo console-$((6*7))\n'));
    await waitFor('the echoed command output', () => output.text().includes('console-42')).catch((error: unknown) => {
      throw new Error(`${String(error)}; console: ${JSON.stringify(output.text().slice(-600))}; processes: ${processesMentioning(main.config.uuid).join(' | ')}`);
    });
    session.close();
    const again = await driver.openConsole(main);
    expect(again.history.toString('utf8')).toContain('console-42');
    again.close();
  });

  it('runs commands through exec with hostname, env, exit codes and a timeout', async () => {
    expect(await driver.exec!.exec(main, { command: ['hostname'] })).toEqual({ exitCode: 0, stdout: 'vb-box\n', stderr: '', timedOut: false });
    const env = await driver.exec!.exec(main, { command: ['/bin/sh', '-c', 'echo "$A $GREETING"; echo oops >&2; exit 3'], env: { A: 'one' } });
    expect(env).toEqual({ exitCode: 3, stdout: 'one hello\n', stderr: 'oops\n', timedOut: false });
    const started = Date.now();
    const slow = await driver.exec!.exec(main, { command: ['/bin/sleep', '300'], timeout: 1 });
    expect(slow.timedOut).toBe(true);
    expect(Date.now() - started).toBeLessThan(30_000);
    const ps = await driver.exec!.exec(main, { command: ['/bin/ps'] });
    expect(ps.stdout).not.toContain('sleep 300');
    const big = await driver.exec!.exec(main, { command: ['/bin/sh', '-c', 'head -c 3m /dev/zero | tr "\\0" a'] });
    expect(big.stdout.length).toBe(MIB);
  });

  it('kills an allocation beyond the memory limit', async () => {
    const small = await driver.exec!.exec(main, { command: ['/bin/sh', '-c', 'head -c 8m /dev/zero | tail -n 1 | wc -c'] });
    expect(small.stdout.trim()).toBe(String(8 * MIB));
    // busybox tail keeps a line without newline in memory: 64 MiB of zeros is one 64 MiB line.
    const big = await driver.exec!.exec(main, { command: ['/bin/sh', '-c', 'head -c 64m /dev/zero | tail -n 1 > /dev/null'] });
    expect(big.exitCode).toBe(128 + 9);
    const memoryDir = (main.runtime?.cgroupDirs as string[]).find((dir) => dir.includes('/memory/') || dir.includes('/unified/') || !dir.includes('/sys/fs/cgroup/'));
    const evidence = existsSync(join(memoryDir!, 'memory.oom_control'))
      ? readFileSync(join(memoryDir!, 'memory.oom_control'), 'utf8')
      : readFileSync(join(memoryDir!, 'memory.events'), 'utf8');
    const oomKills = Number(/oom_kill (\d+)/.exec(evidence)?.[1]);
    expect(oomKills).toBeGreaterThanOrEqual(1);
    const stats = await driver.stats!.domainStats(main, { deadlineMs: 5_000 });
    expect(stats.memory?.limitBytes).toBe(32 * MIB);
    console.info(`lxc: 64 MiB allocation under a 32 MiB limit: exit ${big.exitCode}, oom_kill ${oomKills}`);
  });

  it('reports CPU, memory and pids stats that move', async () => {
    // The container's steady state is init plus its console shell. It churns for a moment after the tests before:
    // busybox init respawns an ended shell and reaps orphans only once a second (its main loop sleeps 1 s), and an
    // unreaped zombie still counts in pids.current though it is gone from the task list. Wait until it settles.
    console.info(`lxc: tasks in the container before stats: ${containerTasks().join(', ')} (pids.current ${pidsCurrentFile()})`);
    await waitFor('init and the console shell alone in the pids cgroup, no zombie', () => containerTasks().length >= 2 && pidsCurrentFile() === containerTasks().length, 10_000);
    const tasks = containerTasks();
    const first = await driver.stats!.domainStats(main, { deadlineMs: 5_000 });
    expect(first).toMatchObject({ uuid: main.config.uuid, state: 'running', memory: { maximumBytes: 32 * MIB, limitBytes: 32 * MIB }, pids: { limit: 64 } });
    expect(first.pids!.current, `pids.current against the cgroup's tasks ${tasks.join(', ')}`).toBe(tasks.length);
    expect(first.net).toEqual([]);
    // CPU work, and 4 MiB in the container's tmpfs (charged to its memory cgroup until removed).
    await driver.exec!.exec(main, { command: ['/bin/sh', '-c', 'i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; head -c 4m /dev/zero > /tmp/fill'] });
    const second = await driver.stats!.domainStats(main, { deadlineMs: 5_000 });
    expect(second.cpu!.timeNs).toBeGreaterThan(first.cpu!.timeNs);
    expect(second.memory!.currentBytes!).toBeGreaterThan(first.memory!.currentBytes! + 2 * MIB);
    await driver.exec!.exec(main, { command: ['/bin/rm', '/tmp/fill'] });
    console.info(`lxc: cpu ${first.cpu!.timeNs} -> ${second.cpu!.timeNs} ns, memory ${first.memory!.currentBytes} -> ${second.memory!.currentBytes} bytes`);
  });

  it('freezes and thaws', async () => {
    expect(main.apply(await driver.suspend(main))).toMatchObject({ state: 'paused', reason: 'user' });
    await rejectsWith(driver.exec!.exec(main, { command: ['true'] }), 'OPERATION_INVALID');
    expect(execFileSync('lxc-info', ['-P', stateDir, '-n', main.config.uuid, '-s', '-H'], { encoding: 'utf8' }).trim()).toBe('FROZEN');
    expect(main.apply(await driver.resume(main))).toMatchObject({ state: 'running', reason: 'unpaused' });
    expect((await driver.exec!.exec(main, { command: ['echo', 'thawed'] })).stdout).toBe('thawed\n');
  });

  it('is re-adopted by a fresh driver on the same state dir', async () => {
    const pid = main.initPid;
    await driver.close();
    driver = new LxcDriver({ watchIntervalMs: 200 });
    await driver.init(makeDriverContext(stateDir, domains, observed));
    expect(main.apply(await driver.adopt(main))).toMatchObject({ state: 'running', reason: 'unpaused' });
    expect(main.initPid).toBe(pid);
    expect((await driver.exec!.exec(main, { command: ['hostname'] })).stdout).toBe('vb-box\n');
    const session = await driver.openConsole(main);
    expect(session.history.toString('utf8')).toContain(ROOTFS_MARKERS.ready);
    session.close();
  });

  it('outlives a SIGKILLed driver process and its console writer does not', async () => {
    const held = new Domain(containerConfig(rootfs, { container: { rootfs: { path: rootfs }, hostname: 'vb-held' } }));
    domains.set(held.config.uuid, held);
    // A separate Node process plays the agent: it starts the container, types on the console, then is killed.
    const program = `
      import pino from 'pino';
      import { LxcDriver } from ${JSON.stringify(join(import.meta.dirname, '../src/index.ts'))};
      const config = JSON.parse(process.env.LXC_CONFIG);
      const driver = new LxcDriver();
      await driver.init({ node: 'n', stateDir: process.env.LXC_STATE_DIR, logger: pino({ level: 'warn' }), observedState() {}, async saveRuntime() {} });
      const started = await driver.start({ config, state: 'shutoff', reason: 'unknown' }, { paused: false });
      const session = await driver.openConsole({ config, ...started });
      session.write(Buffer.from('echo typed-before-kill\\n'));
      session.onData((chunk) => { if (chunk.toString().includes('typed-before-kill')) console.log(JSON.stringify(started)); });
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', program], {
      env: { ...process.env, LXC_CONFIG: JSON.stringify(held.config), LXC_STATE_DIR: stateDir },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    await waitFor('the child to start the container and type', () => out.includes('\n'), 60_000);
    held.apply(JSON.parse(out.trim().split('\n')[0]!) as RunState);
    const writers = () => processesMentioning(stateDir).filter((line) => line.includes('lxc-console'));
    expect(writers().length).toBeGreaterThan(0);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    await waitFor('the console writer to die with its parent', () => writers().length === 0, 5_000);

    expect(held.apply(await driver.adopt(held))).toMatchObject({ state: 'running', reason: 'booted' });
    expect((await driver.exec!.exec(held, { command: ['hostname'] })).stdout).toBe('vb-held\n');
    const session = await driver.openConsole(held);
    const output = collectConsole(session);
    expect(output.text()).toContain('typed-before-kill');
    session.write(Buffer.from('echo typed-after-adopt\n'));
    await waitFor('a keystroke through the new driver', () => output.text().includes('typed-after-adopt'));
    session.close();
    expect(held.apply(await driver.destroy(held))).toMatchObject({ state: 'shutoff', reason: 'destroyed' });
    expect(writers()).toEqual([]);
    await driver.undefine(held);
    // a second Node process compiles the driver through tsx before it types: slow on a loaded machine
  }, 240_000);

  it('reboots: a new init, still running', async () => {
    const pid = main.initPid;
    expect(main.apply(await driver.reboot(main, { timeoutMs: 20_000 }))).toMatchObject({ state: 'running', reason: 'booted' });
    expect(main.initPid).not.toBe(pid);
    expect((await driver.exec!.exec(main, { command: ['hostname'] })).stdout).toBe('vb-box\n');
  });

  it('shuts down on request within the timeout', async () => {
    const started = Date.now();
    expect(main.apply(await driver.shutdown(main, { timeoutMs: 20_000 }))).toMatchObject({ state: 'shutoff', reason: 'shutdown' });
    console.info(`lxc: busybox shutdown took ${Date.now() - started} ms`);
    expect(main.runtime).toBeUndefined();
    await rejectsWith(driver.exec!.exec(main, { command: ['true'] }), 'OPERATION_INVALID');
  });

  it('starts paused and destroys a frozen container', async () => {
    expect(main.apply(await driver.start(main, { paused: true }))).toMatchObject({ state: 'paused', reason: 'user' });
    expect(main.apply(await driver.destroy(main))).toMatchObject({ state: 'shutoff', reason: 'destroyed' });
  });

  it('times out a shutdown its init ignores, and reports an init that exits by itself', async () => {
    const stubborn = new Domain(containerConfig(rootfs, { container: { rootfs: { path: rootfs }, init: ['/bin/sh', '-c', 'echo stubborn; sleep 6'] } }));
    domains.set(stubborn.config.uuid, stubborn);
    stubborn.apply(await driver.start(stubborn, { paused: false }));
    await rejectsWith(driver.shutdown(stubborn, { timeoutMs: 500 }), 'OPERATION_TIMEOUT');
    expect(stubborn.state).toBe('running');
    await waitFor('the watcher to see init exit', () => observed.some((entry) => entry.uuid === stubborn.config.uuid && entry.change.state === 'shutoff'));
    expect(stubborn).toMatchObject({ state: 'shutoff', reason: 'shutdown', runtime: undefined });
    await driver.undefine(stubborn);
    expect(existsSync(join(stateDir, stubborn.config.uuid))).toBe(false);
  });

  it('leaves nothing behind: cgroups, processes, veths, files', async () => {
    await driver.undefine(main);
    expect(existsSync(join(stateDir, main.config.uuid))).toBe(false);
    for (const domain of domains.values()) expect(cgroupDirsNamed(domain.config.uuid)).toEqual([]);
    const newPivots = cgroupDirsNamed('lxc.pivot').filter((pivot) => !pivotsBefore.has(pivot));
    expect(newPivots).toEqual([]);
    await waitFor('LXC processes to go', () => processesMentioning(stateDir).length === 0, 5_000).catch(() => undefined);
    expect(processesMentioning(stateDir)).toEqual([]);
    expect(readdirSync('/sys/class/net').filter((name) => name.startsWith('vbl'))).toEqual([]);
  });
});

import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtError } from '@virtbus/api-contract';
import { ensureTestGuest, GUEST_MARKERS, hasBinaryOrSkip, makeLibvirtPki, rejectsWith, relayLibvirtTls, requireBinary, startLibvirt, testDomainConfig, VIRSH, waitFor, type Libvirt } from '@virtbus/testing';
import { collectConsole, makeDriverContext, TestDomain, type Observation } from './support/driver-harness.js';
import {
  AuthType,
  DomainState,
  LibvirtClient,
  LibvirtDomainEvents,
  LibvirtDriver,
  LibvirtRemoteError,
  LibvirtStatsGroup,
  ListDomainsFlag,
  parseLibvirtUri,
  uuidBytes,
  uuidString,
  type LibvirtDomainEvent,
  type LibvirtDomainRef,
} from '../src/index.js';
import { decodeXdr } from '../src/libvirt/xdr.js';
import { BlockFlag, BlockJobStatus, DeviceFlag, MonitorFlag } from '../src/libvirt/protocol.js';

const run = promisify(execFile);
const LIBVIRTD = hasBinaryOrSkip('libvirtd') && hasBinaryOrSkip('virsh');
const QEMU = LIBVIRTD && hasBinaryOrSkip('qemu-system-x86_64');
const TLS_TOOLS = LIBVIRTD && hasBinaryOrSkip('openssl') && hasBinaryOrSkip('nsenter');

/** Every procedure of the table, one spec each, against a private libvirtd (its own dirs, socket, mount and network namespace). */
describe.skipIf(!LIBVIRTD)('libvirt remote protocol client against a real libvirtd', () => {
  const tag = `vblr${randomBytes(3).toString('hex')}`;
  let root: string;
  let libvirt: Libvirt;
  let test: LibvirtClient;
  let socket: string;
  const virsh = async (...args: string[]) => (await run(VIRSH, ['-q', '-c', libvirt.uri, ...args])).stdout.trim();
  /** virsh on the daemon's shared test:///default (the driver's domains there). */
  const virshTest = async (...args: string[]) => (await run(VIRSH, ['-q', '-c', `test+unix:///default?socket=${socket}`, ...args])).stdout.trim();
  /** libvirt's id of a running domain, as virsh prints it. */
  const domid = async (name: string, on = virshTest) => Number(await on('domid', name));
  const testXml = (name: string, uuid = randomUUID()) =>
    `<domain type='test'><name>${name}</name><uuid>${uuid}</uuid><memory unit='MiB'>64</memory><currentMemory unit='MiB'>32</currentMemory><vcpu>2</vcpu><os><type>hvm</type></os></domain>`;

  beforeAll(async () => {
    // short path: unix socket paths are limited to 107 bytes
    root = await mkdtemp(join('/tmp', `${tag}-`));
    libvirt = await startLibvirt(join(root, 'lv'));
    socket = libvirt.socket;
    test = await LibvirtClient.connect({ socket, uri: 'test:///default' });
  });

  afterAll(async () => {
    await test?.close();
    if (libvirt) {
      // QEMU domains outlive libvirtd by design: ours go first
      const names = (await virsh('list', '--all', '--name').catch(() => '')).split('\n').filter((name) => name.startsWith(tag));
      for (const name of names) {
        await virsh('destroy', name).catch(() => 'not running');
        await virsh('undefine', name).catch(() => 'transient: gone with its destroy');
      }
      await libvirt.stop();
    }
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('parses libvirt URIs into the socket and the URI libvirtd opens', () => {
    expect(parseLibvirtUri(libvirt.uri)).toEqual({ socket, uri: 'qemu:///system' });
    expect(parseLibvirtUri('xen:///system')).toEqual({ socket: '/var/run/libvirt/libvirt-sock', uri: 'xen:///system' });
    expect(() => parseLibvirtUri('qemu+ssh://host/system')).toThrow(VirtError);
  });

  it('connectOpen + connectGetType / connectGetVersion / connectGetLibVersion / connectGetHostname answer as virsh does', async () => {
    expect(await test.call('connectGetType', undefined)).toEqual({ type: 'TEST' });
    const { hvVer } = await test.call('connectGetVersion', undefined);
    expect(hvVer).toBeGreaterThan(0n);
    const [major, minor, release] = (await virsh('version', '--daemon')).match(/Running against daemon: ([0-9.]+)/)![1]!.split('.').map(Number);
    expect(await test.call('connectGetLibVersion', undefined)).toEqual({ libVer: BigInt(major! * 1_000_000 + minor! * 1000 + release!) });
    expect(await test.call('connectGetHostname', undefined)).toEqual({ hostname: await virsh('hostname') });
  });

  it('authList reports no authentication on the private socket; connectSupportsFeature knows keepalive', async () => {
    expect(await test.call('authList', undefined)).toEqual({ types: [AuthType.NONE] });
    expect(await test.call('connectSupportsFeature', { feature: 10 })).toEqual({ supported: 1 });
  });

  it('keepalive: a PING gets libvirtd PONG', async () => {
    await test.ping();
    await test.ping();
  });

  it('opening an unknown URI fails with the daemon error, mapped', async () => {
    const error = await rejectsWith(LibvirtClient.connect({ socket, uri: 'nosuchdriver:///system' }), 'OPERATION_FAILED');
    expect(error.cause).toBeInstanceOf(LibvirtRemoteError);
  });

  it('a test:/// domain goes through define, lookup, create, suspend, resume, shutdown, destroy, undefine', async () => {
    const name = `${tag}-t1`;
    const uuid = randomUUID();
    const { dom } = await test.call('domainDefineXml', { xml: testXml(name, uuid) });
    expect(dom.name).toBe(name);
    expect(uuidString(dom.uuid)).toBe(uuid);
    expect(dom.id).toBe(-1);
    expect((await test.call('domainLookupByName', { name })).dom.uuid).toEqual(dom.uuid);
    expect((await test.call('domainLookupByUuid', { uuid: uuidBytes(uuid) })).dom.name).toBe(name);
    const state = async () => (await test.call('domainGetState', { dom, flags: 0 })).state;
    expect(await state()).toBe(DomainState.SHUTOFF);
    expect((await test.call('domainGetXmlDesc', { dom, flags: 0 })).xml).toContain(`<uuid>${uuid}</uuid>`);

    await test.call('domainCreate', { dom });
    expect(await state()).toBe(DomainState.RUNNING);
    const running = (await test.call('domainLookupByName', { name })).dom;
    expect(running.id).toBeGreaterThan(0);
    expect(await test.call('domainGetInfo', { dom })).toEqual({ state: DomainState.RUNNING, maxMem: 65536n, memory: 32768n, nrVirtCpu: 2, cpuTime: expect.any(BigInt) });

    await test.call('domainSuspend', { dom });
    expect(await state()).toBe(DomainState.PAUSED);
    await test.call('domainResume', { dom });
    expect(await state()).toBe(DomainState.RUNNING);
    await test.call('domainShutdown', { dom });
    expect(await state()).toBe(DomainState.SHUTOFF);
    await test.call('domainCreate', { dom });
    await test.call('domainDestroy', { dom });
    expect(await state()).toBe(DomainState.SHUTOFF);

    await test.call('domainUndefine', { dom });
    const gone = await rejectsWith(test.call('domainLookupByName', { name }), 'NO_DOMAIN');
    expect((gone.cause as LibvirtRemoteError).libvirtCode).toBe(42);
  });

  it('connectListAllDomains filters by flags', async () => {
    const [a, b] = [`${tag}-la`, `${tag}-lb`];
    const { dom: domA } = await test.call('domainDefineXml', { xml: testXml(a) });
    const { dom: domB } = await test.call('domainDefineXml', { xml: testXml(b) });
    await test.call('domainCreate', { dom: domB });
    const names = async (flags: number) => {
      const reply = await test.call('connectListAllDomains', { needResults: 1, flags });
      expect(reply.ret).toBe(reply.domains.length);
      return reply.domains.map((dom) => dom.name).filter((name) => name.startsWith(tag));
    };
    expect((await names(0)).sort()).toEqual([a, b]);
    expect(await names(ListDomainsFlag.ACTIVE)).toEqual([b]);
    expect(await names(ListDomainsFlag.INACTIVE)).toEqual([a]);
    // the test driver's own running domain is listed too
    expect((await test.call('connectListAllDomains', { needResults: 1, flags: 0 })).domains.map((dom) => dom.name)).toContain('test');
    await test.call('domainDestroy', { dom: domB });
    await test.call('domainUndefineFlags', { dom: domB, flags: 0 });
    await test.call('domainUndefine', { dom: domA });
    expect(await names(0)).toEqual([]);
  });

  it('libvirt errors map to virtbus codes', async () => {
    const name = `${tag}-err`;
    const bad = await rejectsWith(test.call('domainDefineXml', { xml: '<domain type=' }), 'INVALID_ARG');
    expect((bad.cause as LibvirtRemoteError).libvirtCode).toBe(35); // VIR_ERR_XML_DETAIL: libvirt's parser names the spot
    const { dom } = await test.call('domainDefineXml', { xml: testXml(name) });
    const inactive = await rejectsWith(test.call('domainDestroy', { dom }), 'OPERATION_INVALID');
    expect((inactive.cause as LibvirtRemoteError).libvirtCode).toBe(55);
    // libvirt reports a name taken by another UUID as VIR_ERR_OPERATION_FAILED, not VIR_ERR_DOM_EXIST: the driver checks names first
    const clash = await rejectsWith(test.call('domainDefineXml', { xml: testXml(name) }), 'OPERATION_FAILED');
    expect((clash.cause as LibvirtRemoteError).libvirtCode).toBe(9);
    await test.call('domainUndefine', { dom });
    await rejectsWith(test.call('domainLookupByUuid', { uuid: uuidBytes(randomUUID()) }), 'NO_DOMAIN');
  });

  it('connectDomainEventCallbackRegisterAny registers every event of the table; lifecycle messages (318) arrive in order', async () => {
    const client = await LibvirtClient.connect({ socket, uri: 'test:///default' });
    try {
      const ids = [];
      for (const event of Object.values(LibvirtDomainEvents)) ids.push((await client.call('connectDomainEventCallbackRegisterAny', { eventID: event.eventId, dom: null })).callbackID);
      expect(new Set(ids).size).toBe(ids.length);
      const name = `${tag}-ev`;
      const seen: Array<[number, number]> = [];
      const metadata: unknown[] = [];
      client.onEvent((procedure, body) => {
        if (procedure === LibvirtDomainEvents.lifecycle.procedure) {
          const { msg } = decodeXdr(LibvirtDomainEvents.lifecycle.layout, body);
          if (msg.dom.name === name) seen.push([msg.event, msg.detail]);
        } else if (procedure === LibvirtDomainEvents.metadataChange.procedure) metadata.push(decodeXdr(LibvirtDomainEvents.metadataChange.layout, body));
      });
      const { dom } = await client.call('domainDefineXml', { xml: testXml(name) });
      await client.call('domainCreate', { dom });
      await virshTest('suspend', name);
      await virshTest('resume', name);
      await virshTest('metadata', name, 'http://virtbus.test/', '--key', 'vb', '--set', '<a/>');
      await virshTest('destroy', name);
      await client.call('domainUndefine', { dom });
      // DEFINED/ADDED, STARTED/BOOTED, SUSPENDED/PAUSED, RESUMED/UNPAUSED, STOPPED/DESTROYED, UNDEFINED/REMOVED
      await waitFor('six lifecycle events', () => seen.length >= 6, 10_000);
      expect(seen).toEqual([[0, 0], [2, 0], [3, 0], [4, 0], [5, 1], [1, 0]]);
      expect(metadata).toEqual([{ callbackID: ids[12], dom: expect.objectContaining({ name }), type: 2, nsuri: 'http://virtbus.test/' }]);
      await client.call('connectDomainEventCallbackDeregisterAny', { callbackID: ids[0]! });
    } finally {
      await client.close();
    }
  });

  it('connectGetAllDomainStats answers typed parameters (the state group on test:///)', async () => {
    const { retStats } = await test.call('connectGetAllDomainStats', { doms: [], stats: LibvirtStatsGroup.STATE, flags: ListDomainsFlag.ACTIVE });
    const own = retStats.find((record) => record.dom.name === 'test')!;
    const { state, reason } = await test.call('domainGetState', { dom: own.dom, flags: 0 });
    expect(state).toBe(DomainState.RUNNING);
    expect(own.params).toEqual([
      { field: 'state.state', value: { type: 1, value: state } },
      { field: 'state.reason', value: { type: 1, value: reason } },
    ]);
  });

  it("graphics and guest-agent procedures on test:///'s running domain: screenshot stream (PNG), send-key, guest info, interface addresses, fs freeze/thaw, time, user password", async () => {
    const { dom } = await test.call('domainLookupByName', { name: 'test' });
    const shot = await test.readStream('domainScreenshot', { dom, screen: 0, flags: 0 }, 1 << 20);
    expect(shot.reply).toEqual({ mime: 'image/png' });
    expect(shot.data.subarray(1, 4).toString()).toBe('PNG');
    // the stream was finished on both sides: the connection goes on
    expect(await test.call('connectGetType', undefined)).toEqual({ type: 'TEST' });
    // one larger than its bound is aborted (virStreamAbort), and the connection still goes on
    await rejectsWith(test.readStream('domainScreenshot', { dom, screen: 0, flags: 0 }, 100), 'OPERATION_FAILED');
    expect(await test.call('connectGetType', undefined)).toEqual({ type: 'TEST' });
    await test.call('domainSendKey', { dom, codeset: 0, holdtime: 50, keycodes: [29, 56, 111], flags: 0 });
    // libvirt 9.0's test driver has no virDomainGetGuestInfo: the daemon names the API the number reached (QEMU's answer: apps/agent/test/libvirt-agent.test.ts)
    const noGuestInfo = await rejectsWith(test.call('domainGetGuestInfo', { dom, types: 1 | 2 | 4 | 8, flags: 0 }), 'OPERATION_UNSUPPORTED');
    expect(noGuestInfo.message).toContain('virDomainGetGuestInfo');
    const { ifaces } = await test.call('domainInterfaceAddresses', { dom, source: 1, flags: 0 });
    expect(ifaces.length).toBeGreaterThan(0);
    expect((await test.call('domainFsFreeze', { dom, mountpoints: [], flags: 0 })).filesystems).toBeGreaterThan(0);
    expect((await test.call('domainFsThaw', { dom, mountpoints: [], flags: 0 })).filesystems).toBeGreaterThan(0);
    const time = await test.call('domainGetTime', { dom, flags: 0 });
    expect(time.seconds).toBeGreaterThan(0n);
    await test.call('domainSetTime', { dom, seconds: time.seconds, nseconds: 0, flags: 0 });
    await test.call('domainSetUserPassword', { dom, user: 'root', password: 'x', flags: 0 });
  }, 15_000);

  it('a closed client rejects calls instead of hanging', async () => {
    const client = await LibvirtClient.connect({ socket, uri: 'test:///default' });
    await client.close();
    expect(client.closed).toBe(true);
    await rejectsWith(client.call('connectGetType', undefined), 'OPERATION_FAILED');
  });

  it('keepalive: a silent libvirtd (SIGSTOPped) drops the connection and fails the call in flight', async () => {
    // libvirtd is the wrapper's child (the wrapper is ours: startLibvirt spawned it)
    const children = readFileSync(`/proc/${libvirt.pid}/task/${libvirt.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
    const daemon = children.find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('/usr/sbin/libvirtd'));
    expect(daemon).toBeDefined();
    const client = await LibvirtClient.connect({ socket, uri: 'test:///default', keepaliveIntervalMs: 200, keepaliveCount: 3 });
    const closed = new Promise<Error>((resolve) => client.onClosed(resolve));
    process.kill(daemon!, 'SIGSTOP');
    try {
      const call = rejectsWith(client.call('connectGetType', undefined), 'OPERATION_TIMEOUT');
      expect(VirtError.is(await closed, 'OPERATION_TIMEOUT')).toBe(true);
      await call;
      expect(client.closed).toBe(true);
    } finally {
      process.kill(daemon!, 'SIGCONT');
    }
    await test.ping();
  });

  describe('LibvirtDriver (driver libvirt) on test:///default through the daemon', () => {
    it('probes, starts (also paused), suspends, resumes, reboots, resets, shuts down, destroys, adopts and undefines', async () => {
      const domains = new Map<string, TestDomain>();
      const observed: Observation[] = [];
      const driver = new LibvirtDriver({ uri: `test+unix:///default?socket=${socket}` });
      await driver.init(makeDriverContext(join(root, 'driver'), domains, observed));
      try {
        expect(await driver.probe()).toMatchObject({ name: 'libvirt', domainTypes: ['libvirt'], available: true, capabilities: ['lifecycle', 'stats', 'snapshots', 'save-restore', 'native-xml', 'resources', 'hypervisor:test'] });
        const domain = new TestDomain(testDomainConfig({ name: `${tag}-drv`, driver: 'libvirt', vcpus: 2, memory: 96 }));
        expect(() => driver.validate(domain.config)).not.toThrow();
        expect(() => driver.validate({ ...domain.config, driver: 'qemu' })).toThrow(VirtError);
        expect(await driver.adopt(domain)).toEqual({ state: 'shutoff', reason: 'unknown' });

        expect(domain.apply(await driver.start(domain, { paused: false }))).toEqual({ state: 'running', reason: 'booted', id: await domid(domain.config.name) });
        const lookedUp = (await test.call('domainLookupByName', { name: domain.config.name })).dom;
        expect(await test.call('domainGetInfo', { dom: lookedUp })).toMatchObject({ maxMem: 96n * 1024n, nrVirtCpu: 2 });
        expect(await driver.stats!.domainStats(domain, { deadlineMs: 5000 })).toMatchObject({
          uuid: domain.config.uuid,
          state: 'running',
          reason: 'booted',
          cpu: { timeNs: expect.any(Number) },
          memory: { maximumBytes: 96 * 1024 * 1024 },
          vcpu: { current: 2, maximum: 2 },
        });
        expect(await driver.suspend(domain)).toEqual({ state: 'paused', reason: 'user', id: await domid(domain.config.name) });
        expect(await driver.resume(domain)).toEqual({ state: 'running', reason: 'unpaused', id: await domid(domain.config.name) });
        expect((await driver.reboot(domain, { timeoutMs: 10_000 })).state).toBe('running');
        expect((await driver.reset(domain)).state).toBe('running');
        expect(await driver.adopt(domain)).toMatchObject({ state: 'running' });
        expect(await driver.shutdown(domain, { timeoutMs: 10_000 })).toEqual({ state: 'shutoff', reason: 'shutdown' });
        expect(await driver.start(domain, { paused: true })).toEqual({ state: 'paused', reason: 'user', id: await domid(domain.config.name) });
        expect(await driver.destroy(domain)).toEqual({ state: 'shutoff', reason: 'destroyed' });

        await driver.undefine(domain);
        await rejectsWith(test.call('domainLookupByName', { name: domain.config.name }), 'NO_DOMAIN');
        await driver.undefine(domain);
      } finally {
        await driver.close();
      }
      expect((await driver.probe()).available).toBe(false);
    });

    it('reports what virsh does to its domains as observed states, in order, and refuses a name libvirt holds with DOMAIN_EXISTS', async () => {
      const domains = new Map<string, TestDomain>();
      const observed: Observation[] = [];
      const driver = new LibvirtDriver({ uri: `test+unix:///default?socket=${socket}` });
      await driver.init(makeDriverContext(join(root, 'driver-ev'), domains, observed));
      const domain = new TestDomain(testDomainConfig({ name: `${tag}-obs`, driver: 'libvirt' }));
      domains.set(domain.config.uuid, domain);
      try {
        domain.apply(await driver.start(domain, { paused: false }));
        const expectObserved = async (command: string, state: string, reason: string) => {
          const before = observed.length;
          await virshTest(command, domain.config.name);
          await waitFor(`${command} observed`, () => observed.length > before, 10_000);
          const id = state === 'shutoff' ? {} : { id: await domid(domain.config.name) };
          expect(observed.slice(before)).toEqual([{ uuid: domain.config.uuid, change: { state, reason, ...id } }]);
        };
        await expectObserved('suspend', 'paused', 'user');
        await expectObserved('resume', 'running', 'unpaused');
        await expectObserved('destroy', 'shutoff', 'destroyed');
        await expectObserved('start', 'running', 'booted');
        // the driver's own calls are not reported again
        const before = observed.length;
        expect(await driver.destroy(domain)).toEqual({ state: 'shutoff', reason: 'destroyed' });
        expect(await driver.start(domain, { paused: false })).toEqual({ state: 'running', reason: 'booted', id: await domid(domain.config.name) });
        expect(await driver.stats!.domainStats(domain, { deadlineMs: 5000 })).toMatchObject({ state: 'running', cpu: { timeNs: expect.any(Number) }, memory: { maximumBytes: domain.config.memory * 1024 * 1024 } });
        await virshTest('destroy', domain.config.name);
        await waitFor('virsh destroy observed', () => observed.length > before, 10_000);
        expect(observed.slice(before)).toEqual([{ uuid: domain.config.uuid, change: { state: 'shutoff', reason: 'destroyed' } }]);

        const clash = new TestDomain(testDomainConfig({ name: domain.config.name, driver: 'libvirt' }));
        await rejectsWith(driver.start(clash, { paused: false }), 'DOMAIN_EXISTS');
      } finally {
        await driver.undefine(domain);
        await driver.close();
      }
    });

    it('reports itself unavailable when libvirtd does not answer', async () => {
      const driver = new LibvirtDriver({ uri: `test+unix:///default?socket=${join(root, 'no-such-sock')}` });
      await driver.init(makeDriverContext(join(root, 'driver2'), new Map(), []));
      expect(await driver.probe()).toMatchObject({ available: false, detail: expect.stringContaining('libvirtd unreachable') });
      await rejectsWith(driver.start(new TestDomain(testDomainConfig({ name: `${tag}-x`, driver: 'libvirt' })), { paused: false }), 'OPERATION_FAILED');
      await driver.close();
    });
  });

  describe.skipIf(!TLS_TOOLS)('TLS to a libvirtd listening on its port 16514 (libvirt\'s x509 files)', () => {
    let tlsd: Libvirt | undefined;
    let relay: Awaited<ReturnType<typeof relayLibvirtTls>> | undefined;
    let tlsRoot: string;
    beforeAll(async () => {
      tlsRoot = join(root, 'tls');
      tlsd = await startLibvirt(join(tlsRoot, 'lv'), { tls: true });
      relay = await relayLibvirtTls(tlsd, tlsRoot);
    });
    afterAll(async () => {
      await relay?.close();
      await tlsd?.stop();
    });

    it('the driver opens test+tls://localhost:PORT/default?pkipath=…, checking libvirtd\'s certificate, and runs a domain', async () => {
      const uri = `test+tls://localhost:${relay!.port}/default?pkipath=${join(tlsRoot, 'lv', 'pki')}`;
      const domains = new Map<string, TestDomain>();
      const driver = new LibvirtDriver({ uri });
      await driver.init(makeDriverContext(join(tlsRoot, 'driver'), domains, []));
      try {
        expect(await driver.probe()).toMatchObject({ available: true, detail: expect.stringContaining(`test:///default on localhost:${relay!.port} (tls)`) });
        const domain = new TestDomain(testDomainConfig({ name: `${tag}-tls`, driver: 'libvirt' }));
        domains.set(domain.config.uuid, domain);
        expect(await driver.start(domain, { paused: false })).toMatchObject({ state: 'running', reason: 'booted' });
        expect(await driver.destroy(domain)).toMatchObject({ state: 'shutoff', reason: 'destroyed' });
        await driver.undefine(domain);
      } finally {
        await driver.close();
      }
    });

    it.skipIf(!QEMU)('the driver opens qemu+tls://localhost:PORT/system?pkipath=… and runs a QEMU domain (TCG) with its console stream over TLS', async () => {
      const uri = `qemu+tls://localhost:${relay!.port}/system?pkipath=${join(tlsRoot, 'lv', 'pki')}`;
      const domains = new Map<string, TestDomain>();
      const driver = new LibvirtDriver({ uri });
      await driver.init(makeDriverContext(join(tlsRoot, 'driver-q'), domains, []));
      const domain = new TestDomain(testDomainConfig({ name: `${tag}-qtls`, driver: 'libvirt', memory: 64 }));
      domains.set(domain.config.uuid, domain);
      try {
        expect(await driver.probe()).toMatchObject({
          available: true,
          detail: expect.stringContaining(`qemu:///system on localhost:${relay!.port} (tls): QEMU`),
          capabilities: expect.arrayContaining(['console', 'hypervisor:qemu']),
        });
        expect(domain.apply(await driver.start(domain, { paused: true }))).toMatchObject({ state: 'paused', reason: 'user' });
        // a stream (not only calls) over the TLS connection: the console opens and closes cleanly
        const session = await driver.console!.openConsole(domain);
        session.close();
        // libvirt's VNC socket is on libvirtd's host: no viewer relay over TLS
        await rejectsWith(driver.graphics!.openGraphics(domain), 'OPERATION_UNSUPPORTED');
        expect(domain.apply(await driver.resume(domain))).toMatchObject({ state: 'running', reason: 'unpaused' });
        expect(await driver.domainStats(domain, { deadlineMs: 10_000 })).toMatchObject({ state: 'running', cpu: { timeNs: expect.any(Number) }, memory: { maximumBytes: 64 * 1024 * 1024 } });
        expect(domain.apply(await driver.destroy(domain))).toMatchObject({ state: 'shutoff', reason: 'destroyed' });
      } finally {
        // QEMU outlives libvirtd: ours goes before the daemon does
        await driver.destroy(domain).catch(() => 'not running');
        await driver.undefine(domain);
        await driver.close();
      }
    });

    it('refuses a libvirtd whose certificate another CA signed, and connects with no_verify=1', async () => {
      const other = join(tlsRoot, 'other-pki');
      await makeLibvirtPki(other);
      // the other CA's client certificate: libvirtd refuses it in turn, so only the client's check is seen here
      await rejectsWith(LibvirtClient.connect(parseLibvirtUri(`test+tls://localhost:${relay!.port}/default?pkipath=${other}`)), 'OPERATION_FAILED');
      const own = join(tlsRoot, 'lv', 'pki');
      const unverified = await LibvirtClient.connect(parseLibvirtUri(`test+tls://127.0.0.1:${relay!.port}/default?pkipath=${own}&no_verify=1`));
      try {
        expect((await unverified.call('connectGetType', undefined)).type).toBe('TEST');
      } finally {
        await unverified.close();
      }
    });
  });

  describe.skipIf(!QEMU)('qemu:///system on the private daemon (TCG)', () => {
    /** A diskless QEMU domain: enough for procedures that need a running QEMU, not a guest. */
    const qemuXml = (name: string) =>
      `<domain type='qemu'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>` +
      `<os><type arch='x86_64' machine='pc'>hvm</type></os><devices><emulator>${requireBinary('qemu-system-x86_64')}</emulator>` +
      `<controller type='usb' model='none'/><memballoon model='none'/></devices></domain>`;
    /** Runs `work` on a running diskless QEMU domain of its own, destroyed and undefined after it. */
    const onRunningQemu = async (name: string, work: (qemu: LibvirtClient, dom: LibvirtDomainRef) => Promise<void>) => {
      const qemu = await LibvirtClient.connect({ socket, uri: 'qemu:///system' });
      try {
        const { dom } = await qemu.call('domainDefineXml', { xml: qemuXml(name) });
        await qemu.call('domainCreate', { dom });
        await work(qemu, dom);
        await qemu.call('domainDestroy', { dom });
        await qemu.call('domainUndefine', { dom });
      } finally {
        await qemu.close();
      }
    };
    it('define, create, reset, suspend, resume, destroy, create paused, undefine a diskless QEMU domain, seen by virsh', async () => {
      const name = `${tag}-q1`;
      const qemu = await LibvirtClient.connect({ socket, uri: 'qemu:///system' });
      try {
        expect(await qemu.call('connectGetType', undefined)).toEqual({ type: 'QEMU' });
        const xml = qemuXml(name);
        const { dom } = await qemu.call('domainDefineXml', { xml });
        expect(await virsh('domstate', name)).toBe('shut off');
        await qemu.call('domainCreate', { dom });
        expect(await virsh('domstate', name)).toBe('running');
        expect((await qemu.call('domainGetState', { dom, flags: 0 })).state).toBe(DomainState.RUNNING);
        await qemu.call('domainReset', { dom, flags: 0 });
        await qemu.call('domainSuspend', { dom });
        expect(await virsh('domstate', name)).toBe('paused');
        await qemu.call('domainResume', { dom });
        await qemu.call('domainDestroy', { dom });
        expect(await virsh('domstate', name)).toBe('shut off');
        // VIR_DOMAIN_START_PAUSED
        await qemu.call('domainCreateWithFlags', { dom, flags: 1 });
        expect(await virsh('domstate', name)).toBe('paused');
        await qemu.call('domainDestroy', { dom });
        await qemu.call('domainUndefine', { dom });
        expect(await virsh('list', '--all', '--name')).not.toContain(name);
      } finally {
        await qemu.close();
      }
    });

    it('connectGetCapabilities lists machine types; domainGetJobStats, domainAbortJob, domainMigrateSetMaxDowntime and domainMigratePerform3Params reach a running domain (the migration itself: apps/agent/test/libvirt-agent.test.ts)', async () => {
      const name = `${tag}-q2`;
      await onRunningQemu(name, async (qemu, dom) => {
        const { capabilities } = await qemu.call('connectGetCapabilities', undefined);
        expect(capabilities).toMatch(/<machine\b[^>]*>pc<\/machine>/);
        // no job: type NONE (0), no figures
        expect(await qemu.call('domainGetJobStats', { dom, flags: 0 })).toEqual({ type: 0, params: [] });
        await rejectsWith(qemu.call('domainAbortJob', { dom }), 'OPERATION_INVALID');
        // QEMU's downtime-limit, which libvirt sets with or without a migration job
        await qemu.call('domainMigrateSetMaxDowntime', { dom, downtime: 777n, flags: 0 });
        expect(await virsh('migrate-getmaxdowntime', name)).toBe('777');
        // peer to peer into the same daemon: libvirt decodes the call (URI as a string parameter) and refuses the same host (an internal error)
        const refused = await rejectsWith(
          qemu.call('domainMigratePerform3Params', { dom, dconnuri: libvirt.uri, params: [{ field: 'migrate_uri', value: { type: 7, value: `unix://${join(root, 'm.sock')}` } }], cookieIn: Buffer.alloc(0), flags: 1 | 2 }),
          'OPERATION_FAILED',
        );
        expect(refused.message).toMatch(/same host/);
        expect(await virsh('domstate', name)).toBe('running');
      });
    });

    it("qemuDomainMonitorCommand (libvirt-qemu): a QMP command gets QEMU's whole JSON reply (an error too), an HMP line its text; libvirt taints the domain custom-monitor", async () => {
      const name = `${tag}-q3`;
      await onRunningQemu(name, async (qemu, dom) => {
        const status = JSON.parse((await qemu.call('qemuDomainMonitorCommand', { dom, cmd: JSON.stringify({ execute: 'query-status' }), flags: 0 })).result);
        expect(status).toMatchObject({ return: { status: 'running', running: true } });
        const unknown = JSON.parse((await qemu.call('qemuDomainMonitorCommand', { dom, cmd: JSON.stringify({ execute: 'vb-nope' }), flags: 0 })).result);
        expect(unknown).toMatchObject({ error: { class: 'CommandNotFound' } });
        expect((await qemu.call('qemuDomainMonitorCommand', { dom, cmd: 'info status', flags: MonitorFlag.HMP })).result).toMatch(/^VM status: running/);
        expect(readFileSync(join(root, 'lv', 'log', 'qemu', `${name}.log`), 'utf8')).toMatch(/tainted: custom-monitor/);
      });
    });
  });
  describe.skipIf(!QEMU)('device and block procedures on qemu:///system (TCG)', () => {
    it('attach/update/detach device flags, block stats, resize, I/O tune, job info, pull, rebase, commit with pivot, copy with abort, BLOCK_JOB_2 events, as virsh sees them', async () => {
      const name = `${tag}-blk`;
      const img = (file: string) => join(root, `blk-${file}`);
      const qcow2 = (file: string, backing?: string) => run('qemu-img', ['create', '-q', '-f', 'qcow2', ...(backing ? ['-b', img(backing), '-F', 'qcow2'] : []), img(file), ...(backing ? [] : ['1M'])]);
      // vda alone; vdb top over base1 (commit); vdc leaf over mid over base2 (rebase, then pull)
      for (const [file, backing] of [['a.qcow2'], ['base1.qcow2'], ['top.qcow2', 'base1.qcow2'], ['base2.qcow2'], ['mid.qcow2', 'base2.qcow2'], ['leaf.qcow2', 'mid.qcow2']] as const) await qcow2(file, backing);
      await run('truncate', ['-s', '1M', img('hot.img')]);
      const disk = (file: string, dev: string, type = 'qcow2') => `<disk type='file' device='disk'><driver name='qemu' type='${type}'/><source file='${img(file)}'/><target dev='${dev}' bus='virtio'/></disk>`;
      const mac = '52:54:00:00:00:42';
      const nic = (link: string) => `<interface type='user'><mac address='${mac}'/><model type='virtio'/>${link}</interface>`;
      const qemu = await LibvirtClient.connect({ socket, uri: 'qemu:///system' });
      const events: Array<{ dst: string; type: number; status: number }> = [];
      qemu.onEvent((procedure, body) => {
        if (procedure !== LibvirtDomainEvents.blockJob2.procedure) return;
        const { dst, type, status } = decodeXdr(LibvirtDomainEvents.blockJob2.layout, body);
        events.push({ dst, type, status });
      });
      const jobEvent = (dst: string, status: number) => waitFor(`BLOCK_JOB_2 ${dst} status ${status}`, () => events.find((event) => event.dst === dst && event.status === status), 60_000, async () => JSON.stringify(events));
      const sourceOf = async (dev: string) => (await virsh('domblklist', name)).split('\n').find((line) => line.trim().startsWith(`${dev} `))?.trim().split(/\s+/)[1];
      try {
        await qemu.call('connectDomainEventCallbackRegisterAny', { eventID: LibvirtDomainEvents.blockJob2.eventId, dom: null });
        const xml =
          `<domain type='qemu'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os><features><acpi/></features>` +
          `<devices><emulator>${requireBinary('qemu-system-x86_64')}</emulator>${disk('a.qcow2', 'vda')}${disk('top.qcow2', 'vdb')}${disk('leaf.qcow2', 'vdc')}` +
          `${nic('')}<controller type='usb' model='none'/><memballoon model='none'/></devices></domain>`;
        const { dom } = await qemu.call('domainDefineXml', { xml });
        await qemu.call('domainCreate', { dom });

        // devices: a live hotplug, a change in place (NIC link), a persistent attach and detach
        await qemu.call('domainAttachDeviceFlags', { dom, xml: disk('hot.img', 'vdd', 'raw'), flags: DeviceFlag.LIVE });
        expect(await sourceOf('vdd')).toBe(img('hot.img'));
        await qemu.call('domainUpdateDeviceFlags', { dom, xml: nic("<link state='down'/>"), flags: DeviceFlag.LIVE });
        expect(await virsh('domif-getlink', name, mac)).toContain('down');
        await qemu.call('domainAttachDeviceFlags', { dom, xml: disk('hot.img', 'vde', 'raw'), flags: DeviceFlag.CONFIG });
        expect(await virsh('dumpxml', '--inactive', name)).toContain("<target dev='vde'");
        await qemu.call('domainDetachDeviceFlags', { dom, xml: disk('hot.img', 'vde', 'raw'), flags: DeviceFlag.CONFIG });
        expect(await virsh('dumpxml', '--inactive', name)).not.toContain("<target dev='vde'");
        await rejectsWith(qemu.call('domainDetachDeviceFlags', { dom, xml: disk('hot.img', 'vdq', 'raw'), flags: DeviceFlag.LIVE }), 'OPERATION_FAILED');

        // stats, size and throttling of one disk
        const stats = await qemu.call('domainBlockStats', { dom, path: 'vda' });
        const virshStats = Object.fromEntries((await virsh('domblkstat', name, 'vda')).split('\n').map((line) => line.trim().split(/\s+/).slice(1)));
        expect(Number(virshStats['rd_req'])).toBeGreaterThanOrEqual(Number(stats.rdReq));
        expect(stats.rdReq).toBeGreaterThanOrEqual(0n);
        await qemu.call('domainBlockResize', { dom, disk: 'vda', size: 2n * 1024n * 1024n, flags: BlockFlag.RESIZE_BYTES });
        expect(await virsh('domblkinfo', name, 'vda')).toMatch(/Capacity:\s+2097152/);
        const ullong = (field: string, value: bigint) => ({ field, value: { type: 4 as const, value } });
        await qemu.call('domainSetBlockIoTune', { dom, disk: 'vda', params: [ullong('total_bytes_sec', 1_000_000n), ullong('total_iops_sec', 500n)], flags: DeviceFlag.LIVE });
        expect(await virsh('blkdeviotune', name, 'vda')).toMatch(/total_bytes_sec\s*: 1000000[\s\S]*total_iops_sec\s*: 500/);
        const { nparams } = await qemu.call('domainGetBlockIoTune', { dom, disk: 'vda', nparams: 0, flags: DeviceFlag.LIVE });
        expect(nparams).toBeGreaterThanOrEqual(6);
        const tune = await qemu.call('domainGetBlockIoTune', { dom, disk: 'vda', nparams, flags: DeviceFlag.LIVE });
        expect(tune.params).toContainEqual(ullong('total_bytes_sec', 1_000_000n));
        expect(tune.params).toContainEqual(ullong('read_iops_sec', 0n));
        expect(await qemu.call('domainGetBlockJobInfo', { dom, path: 'vda', flags: BlockFlag.INFO_BANDWIDTH_BYTES })).toMatchObject({ found: 0 });

        // rebase keeping base2, then a pull of the rest: vdc ends with no backing file
        await qemu.call('domainBlockRebase', { dom, path: 'vdc', base: img('base2.qcow2'), bandwidth: 0n, flags: BlockFlag.PULL_BANDWIDTH_BYTES });
        expect(await jobEvent('vdc', BlockJobStatus.COMPLETED)).toEqual({ dst: 'vdc', type: 1, status: BlockJobStatus.COMPLETED });
        events.length = 0;
        await qemu.call('domainBlockPull', { dom, path: 'vdc', bandwidth: 0n, flags: BlockFlag.PULL_BANDWIDTH_BYTES });
        await jobEvent('vdc', BlockJobStatus.COMPLETED);
        expect((await run('qemu-img', ['info', '-U', img('leaf.qcow2')])).stdout).not.toContain('backing file');

        // an active commit of vdb into base1 ends ready; a pivot moves the disk onto base1
        await qemu.call('domainBlockCommit', { dom, disk: 'vdb', base: null, top: null, bandwidth: 0n, flags: BlockFlag.COMMIT_ACTIVE | BlockFlag.COMMIT_BANDWIDTH_BYTES });
        expect(await jobEvent('vdb', BlockJobStatus.READY)).toEqual({ dst: 'vdb', type: 4, status: BlockJobStatus.READY });
        expect(await qemu.call('domainGetBlockJobInfo', { dom, path: 'vdb', flags: BlockFlag.INFO_BANDWIDTH_BYTES })).toMatchObject({ found: 1, type: 4 });
        await qemu.call('domainBlockJobAbort', { dom, path: 'vdb', flags: BlockFlag.ABORT_PIVOT });
        await jobEvent('vdb', BlockJobStatus.COMPLETED);
        expect(await sourceOf('vdb')).toBe(img('base1.qcow2'));

        // a copy mirrors until aborted: the disk stays on its image
        await qemu.call('domainBlockCopy', { dom, path: 'vda', destxml: `<disk type='file'><source file='${img('copy.qcow2')}'/><driver type='qcow2'/></disk>`, params: [ullong('bandwidth', 0n)], flags: BlockFlag.COPY_TRANSIENT_JOB });
        expect(await jobEvent('vda', BlockJobStatus.READY)).toEqual({ dst: 'vda', type: 2, status: BlockJobStatus.READY });
        await qemu.call('domainBlockJobAbort', { dom, path: 'vda', flags: 0 });
        await jobEvent('vda', BlockJobStatus.CANCELED);
        expect(await sourceOf('vda')).toBe(img('a.qcow2'));
        expect(readFileSync(img('copy.qcow2')).length).toBeGreaterThan(0);
        await qemu.call('domainDestroy', { dom });
        await qemu.call('domainUndefine', { dom });
      } finally {
        await qemu.close();
      }
    }, 180_000);
  });
  describe.skipIf(!QEMU)('LibvirtDriver on qemu:///system (TCG)', () => {
    it('reports reboot and device-added events (also in the contract\'s catalogue), and stats from GetAllDomainStats with the block group', async () => {
      const events: LibvirtDomainEvent[] = [];
      const catalogued: Array<{ uuid: string; event: string; details?: object }> = [];
      const driver = new LibvirtDriver({ uri: `qemu+unix:///system?socket=${socket}`, onDomainEvent: (event) => events.push(event) });
      const domains = new Map<string, TestDomain>();
      await driver.init({ ...makeDriverContext(join(root, 'driver-q'), domains, []), domainEvent: (uuid, event, details) => catalogued.push({ uuid, event, details }) });
      const domain = new TestDomain(testDomainConfig({ name: `${tag}-qev`, driver: 'libvirt', memory: 64 }));
      domains.set(domain.config.uuid, domain);
      const disk = join(root, 'hot.img');
      try {
        domain.apply(await driver.start(domain, { paused: false }));
        await virsh('reset', domain.config.name);
        await waitFor('reboot event', () => events.find((event) => event.type === 'reboot'), 10_000);
        await run('truncate', ['-s', '1M', disk]);
        await virsh('attach-disk', domain.config.name, disk, 'vdb', '--targetbus', 'virtio', '--live');
        const added = await waitFor('device-added event', () => events.find((event) => event.type === 'deviceAdded'), 10_000);
        expect(added).toEqual({ type: 'deviceAdded', uuid: domain.config.uuid, name: domain.config.name, detail: { devAlias: 'virtio-disk1' } });
        // each libvirt event once in the catalogue too (a diskless guest may reset itself again: SeaBIOS finds nothing to boot)
        const reboots = events.filter((event) => event.type === 'reboot').length;
        expect(catalogued.filter(({ event }) => event === 'REBOOT')).toEqual(Array.from({ length: reboots }, () => ({ uuid: domain.config.uuid, event: 'REBOOT', details: {} })));
        expect(catalogued.filter(({ event }) => event === 'DEVICE_ADDED')).toEqual([{ uuid: domain.config.uuid, event: 'DEVICE_ADDED', details: { device: 'virtio-disk1' } }]);
        const stats = await driver.stats!.domainStats(domain, { deadlineMs: 10_000 });
        expect(stats).toMatchObject({
          state: 'running',
          cpu: { timeNs: expect.any(Number), userNs: expect.any(Number) },
          memory: { maximumBytes: 64 * 1024 * 1024 },
          vcpu: { current: 1, maximum: 1, list: [{ id: 0, state: 'running' }] },
          net: [],
          block: [{ name: 'vdb', path: disk, capacityBytes: 1024 * 1024, readRequests: expect.any(Number) }],
        });
        expect(await driver.destroy(domain)).toEqual({ state: 'shutoff', reason: 'destroyed' });
      } finally {
        await driver.undefine(domain);
        await driver.close();
      }
    });
  });

  describe.skipIf(!QEMU)('the QEMU test guest through libvirt (TCG)', () => {
    it('boots from kernel + initrd to GUEST-READY on the console stream, greets a viewer on libvirt\'s VNC socket and shuts down by ACPI', async () => {
      const guest = await ensureTestGuest();
      const domains = new Map<string, TestDomain>();
      // the private libvirtd's / as this process sees it: its VNC socket is in its own /var/lib/libvirt
      const driver = new LibvirtDriver({ uri: `qemu+unix:///system?socket=${socket}`, root: `/proc/${libvirt.libvirtdPid()}/root` });
      await driver.init(makeDriverContext(join(root, 'driver-g'), domains, []));
      const domain = new TestDomain(
        testDomainConfig({ name: `${tag}-guest`, driver: 'libvirt', memory: 256, os: { kernel: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline }, nics: [{ type: 'user' }], graphics: { type: 'vnc' } }),
      );
      domains.set(domain.config.uuid, domain);
      try {
        expect(domain.apply(await driver.start(domain, { paused: true }))).toEqual({ state: 'paused', reason: 'user', id: await domid(domain.config.name, virsh) });
        // opened before the guest runs: nothing it prints is missed
        const session = await driver.console!.openConsole(domain);
        const output = collectConsole(session);
        domain.apply(await driver.resume(domain));
        await waitFor('GUEST-READY on the console', () => output.text().includes(GUEST_MARKERS.ready), 180_000, async () => `console: ${JSON.stringify(output.text().slice(-2000))}; ${await virsh('dumpxml', domain.config.name)}`);
        expect(await virsh('domiflist', domain.config.name)).toContain('user');
        // a viewer's connection to libvirt's VNC socket: QEMU's server greets with its RFB version
        const vnc = await driver.graphics!.openGraphics(domain);
        let greeting = Buffer.alloc(0);
        vnc.onData((chunk) => (greeting = Buffer.concat([greeting, chunk])));
        vnc.resume();
        await waitFor('the RFB greeting', () => greeting.length >= 12, 10_000);
        expect(greeting.subarray(0, 12).toString()).toBe('RFB 003.008\n');
        vnc.close();
        expect(await driver.shutdown(domain, { timeoutMs: 120_000 })).toEqual({ state: 'shutoff', reason: 'shutdown' });
        expect(output.text()).toContain(GUEST_MARKERS.powerOff);
        session.close();
      } finally {
        await driver.destroy(domain).catch(() => 'not running');
        await driver.undefine(domain);
        await driver.close();
      }
    }, 300_000);
  });

  // last: restarts the shared daemon
  describe.skipIf(!QEMU)('libvirtd restarted under a connected driver', () => {
    it('the driver reports libvirtd unreachable, reconnects on its own, and finds the QEMU domain still running', async () => {
      const name = `${tag}-keep`;
      const driver = new LibvirtDriver({ uri: `qemu+unix:///system?socket=${socket}` });
      const domains = new Map<string, TestDomain>();
      const observed: Observation[] = [];
      await driver.init(makeDriverContext(join(root, 'driver3'), domains, observed));
      const waitAvailable = async (available: boolean) => {
        const deadline = Date.now() + 30_000;
        while ((await driver.probe()).available !== available) {
          if (Date.now() > deadline) throw new Error(`driver never became ${available ? 'available' : 'unavailable'}`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      };
      try {
        await waitAvailable(true);
        const domain = new TestDomain(testDomainConfig({ name, driver: 'libvirt' }));
        domains.set(domain.config.uuid, domain);
        expect(domain.apply(await driver.start(domain, { paused: false })).state).toBe('running');
        await libvirt.stop();
        await waitAvailable(false);
        await rejectsWith(driver.adopt(domain), 'OPERATION_FAILED');
        libvirt = await startLibvirt(join(root, 'lv'));
        await waitAvailable(true);
        expect(await driver.adopt(domain)).toMatchObject({ state: 'running' });
        // events are registered again on the new connection: a virsh destroy is seen
        await virsh('destroy', name);
        await waitFor('virsh destroy after the restart observed', () => observed.some((o) => o.change.reason === 'destroyed'), 10_000);
        expect(observed.at(-1)).toEqual({ uuid: domain.config.uuid, change: { state: 'shutoff', reason: 'destroyed' } });
        await driver.undefine(domain);
      } finally {
        await driver.close();
      }
    });
  });
});

import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Qmp } from './qmp.js';
import { QmpClosedError, QmpCommandError, QmpMonitor, QmpTimeoutError, type QmpEvent } from './monitor.js';

const GREETING = { QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 }, package: 'canned' }, capabilities: ['oob'] } };

interface Received {
  execute: string;
  arguments?: Record<string, unknown>;
  id: unknown;
}

/** A unix-socket server that speaks canned QMP: `reply` decides what to send for each command. */
class CannedQmp {
  server!: Server;
  client?: Socket;
  readonly received: Received[] = [];
  reply: (command: Received, send: (message: object) => void) => void = (command, send) => send({ return: {}, id: command.id });

  constructor(readonly path: string) {}

  async listen(): Promise<void> {
    this.server = createServer((socket) => {
      this.client = socket;
      socket.write(`${JSON.stringify(GREETING)}\r\n`);
      let buffer = '';
      socket.on('data', (chunk) => {
        buffer += chunk.toString();
        let newline: number;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const command = JSON.parse(buffer.slice(0, newline)) as Received;
          buffer = buffer.slice(newline + 1);
          this.received.push(command);
          this.reply(command, (message) => socket.write(`${JSON.stringify(message)}\r\n`));
        }
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => this.server.listen(this.path, resolve));
  }

  send(message: object): void {
    this.client?.write(`${JSON.stringify(message)}\r\n`);
  }

  async close(): Promise<void> {
    this.client?.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

describe('QmpMonitor', () => {
  let dir: string;
  let qmp: CannedQmp;
  let monitor: QmpMonitor | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'qmp-spec-'));
    qmp = new CannedQmp(join(dir, 'qmp.sock'));
    await qmp.listen();
  });

  afterEach(async () => {
    monitor?.close();
    monitor = undefined;
    await qmp.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the greeting and negotiates capabilities before anything else', async () => {
    monitor = await QmpMonitor.connect(qmp.path);
    expect(monitor.greeting?.QMP.version.qemu.major).toBe(7);
    expect(qmp.received.map((command) => command.execute)).toEqual(['qmp_capabilities']);
  });

  it('correlates replies by id, even out of order', async () => {
    const held: Received[] = [];
    qmp.reply = (command, send) => {
      if (command.execute === 'qmp_capabilities') return send({ return: {}, id: command.id });
      held.push(command);
      if (held.length === 2) for (const each of [...held].reverse()) send({ return: { answer: each.execute }, id: each.id });
    };
    monitor = await QmpMonitor.connect(qmp.path);
    const [first, second] = await Promise.all([monitor.execute('query-status'), monitor.execute('query-name')]);
    expect(first).toEqual({ answer: 'query-status' });
    expect(second).toEqual({ answer: 'query-name' });
    expect(new Set(qmp.received.map((command) => command.id)).size).toBe(3);
  });

  it('passes arguments and rejects QMP errors with their class', async () => {
    qmp.reply = (command, send) =>
      command.execute === 'qmp_capabilities'
        ? send({ return: {}, id: command.id })
        : send({ error: { class: 'DeviceNotFound', desc: 'no such device' }, id: command.id });
    monitor = await QmpMonitor.connect(qmp.path);
    const failure = monitor.execute('device_del', { id: 'vdb' });
    await expect(failure).rejects.toBeInstanceOf(QmpCommandError);
    await expect(failure).rejects.toMatchObject({ errorClass: 'DeviceNotFound', desc: 'no such device' });
    expect(qmp.received.at(-1)?.arguments).toEqual({ id: 'vdb' });
  });

  it('times out one command without disturbing the next; the late reply is dropped', async () => {
    let late: Received | undefined;
    qmp.reply = (command, send) => {
      if (command.execute === 'slow') late = command;
      else send({ return: { ok: command.execute }, id: command.id });
    };
    monitor = await QmpMonitor.connect(qmp.path);
    await expect(monitor.execute('slow', undefined, { timeoutMs: 50 })).rejects.toBeInstanceOf(QmpTimeoutError);
    qmp.send({ return: { stale: true }, id: late?.id });
    await expect(monitor.execute('query-status')).resolves.toEqual({ ok: 'query-status' });
  });

  it('fans out events', async () => {
    monitor = await QmpMonitor.connect(qmp.path);
    const events: QmpEvent[] = [];
    monitor.on('event', (event) => events.push(event));
    qmp.send({ event: 'STOP', timestamp: { seconds: 1, microseconds: 2 } });
    qmp.send({ event: 'SHUTDOWN', data: { guest: true, reason: 'guest-shutdown' }, timestamp: { seconds: 1, microseconds: 3 } });
    await expect.poll(() => events.length).toBe(2);
    expect(events[0]).toMatchObject({ event: 'STOP', data: {} });
    expect(events[1]).toMatchObject({ event: 'SHUTDOWN', data: { guest: true } });
  });

  it('rejects pending commands and emits close on EOF', async () => {
    qmp.reply = (command, send) => {
      if (command.execute === 'qmp_capabilities') send({ return: {}, id: command.id });
    };
    monitor = await QmpMonitor.connect(qmp.path);
    const closed = new Promise<Error | undefined>((resolve) => monitor!.on('close', resolve));
    const pending = monitor.execute('query-status');
    qmp.client?.end();
    await expect(pending).rejects.toBeInstanceOf(QmpClosedError);
    await expect(closed).resolves.toBeUndefined();
    expect(monitor.closed).toBe(true);
    await expect(monitor.execute('cont')).rejects.toBeInstanceOf(QmpClosedError);
  });

  it('fails to connect when nothing listens, and when the greeting never comes', async () => {
    await expect(QmpMonitor.connect(join(dir, 'missing.sock'), { timeoutMs: 200 })).rejects.toBeInstanceOf(QmpClosedError);
    const silent = createServer(() => undefined);
    const silentPath = join(dir, 'silent.sock');
    await new Promise<void>((resolve) => silent.listen(silentPath, resolve));
    try {
      await expect(QmpMonitor.connect(silentPath, { timeoutMs: 100 })).rejects.toBeInstanceOf(QmpTimeoutError);
    } finally {
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  describe('Qmp command groups', () => {
    let client: Qmp | undefined;

    afterEach(() => {
      client?.close();
      client = undefined;
    });

    it('sends the right command names and maps query-balloon without a balloon to null', async () => {
      qmp.reply = (command, send) => {
        const answers: Record<string, unknown> = {
          'query-status': { status: 'paused', running: false, singlestep: false },
          'query-cpus-fast': [{ 'cpu-index': 0, 'qom-path': '/machine/unattached/device[0]', 'thread-id': 42, target: 'x86_64' }],
          'query-blockstats': [{ device: '', 'node-name': 'fmt-vda', stats: { rd_bytes: 512, wr_bytes: 0, rd_operations: 1, wr_operations: 0, flush_operations: 0, rd_total_time_ns: 10, wr_total_time_ns: 0, flush_total_time_ns: 0 } }],
        };
        if (command.execute === 'query-balloon') return send({ error: { class: 'DeviceNotActive', desc: 'No balloon device has been activated' }, id: command.id });
        send({ return: answers[command.execute] ?? {}, id: command.id });
      };
          client = await Qmp.connect(qmp.path);
      await expect(client.lifecycle.queryStatus()).resolves.toMatchObject({ status: 'paused', running: false });
      await expect(client.lifecycle.queryCpusFast()).resolves.toEqual([expect.objectContaining({ 'thread-id': 42 })]);
      await expect(client.block.queryBlockstats()).resolves.toEqual([expect.objectContaining({ 'node-name': 'fmt-vda' })]);
      await expect(client.lifecycle.queryBalloon()).resolves.toBeNull();
      await client.lifecycle.cont();
      await client.lifecycle.stop();
      await client.lifecycle.systemPowerdown();
      await client.lifecycle.systemReset();
      await client.lifecycle.quit();
      expect(qmp.received.map((command) => command.execute)).toEqual([
        'qmp_capabilities', 'query-status', 'query-cpus-fast', 'query-blockstats', 'query-balloon', 'cont', 'stop', 'system_powerdown', 'system_reset', 'quit',
      ]);
    });

    it('puts the arguments where QEMU reads them (names and members of the QAPI schema)', async () => {
          client = await Qmp.connect(qmp.path);
      const q = client;
      const calls: [() => Promise<unknown>, string, Record<string, unknown> | undefined][] = [
        [() => q.block.blockdevAdd({ driver: 'file', 'node-name': 'file-vdb', filename: '/x.qcow2', 'read-only': false }), 'blockdev-add', { driver: 'file', 'node-name': 'file-vdb', filename: '/x.qcow2', 'read-only': false }],
        [() => q.block.blockdevDel('fmt-vdb'), 'blockdev-del', { 'node-name': 'fmt-vdb' }],
        [() => q.block.queryNamedBlockNodes(), 'query-named-block-nodes', { flat: true }],
        [() => q.block.queryBlock(), 'query-block', undefined],
        [() => q.block.eject({ id: 'sda', force: true }), 'eject', { id: 'sda', force: true }],
        [() => q.block.nbdServerStart({ addr: { type: 'inet', data: { host: '127.0.0.1', port: '10809' } } }), 'nbd-server-start', { addr: { type: 'inet', data: { host: '127.0.0.1', port: '10809' } } }],
        [() => q.block.blockExportDel('mig-export-vda'), 'block-export-del', { id: 'mig-export-vda' }],
        [() => q.migration.migrate('tcp:127.0.0.1:4444'), 'migrate', { uri: 'tcp:127.0.0.1:4444' }],
        [() => q.migration.migrateIncoming('tcp:127.0.0.1:4444'), 'migrate-incoming', { uri: 'tcp:127.0.0.1:4444' }],
        [() => q.migration.migrateSetCapabilities([{ capability: 'postcopy-ram', state: true }]), 'migrate-set-capabilities', { capabilities: [{ capability: 'postcopy-ram', state: true }] }],
        [() => q.migration.migrateSetParameters({ 'max-bandwidth': 1 }), 'migrate-set-parameters', { 'max-bandwidth': 1 }],
        [() => q.migration.migrateCancel(), 'migrate_cancel', undefined],
        [() => q.migration.migrateStartPostcopy(), 'migrate-start-postcopy', undefined],
        [() => q.jobs.blockJobCancel('mig-mirror-vda', false), 'block-job-cancel', { device: 'mig-mirror-vda', force: false }],
        [() => q.jobs.jobComplete('j'), 'job-complete', { id: 'j' }],
        [() => q.jobs.jobDismiss('j'), 'job-dismiss', { id: 'j' }],
        [() => q.snapshots.snapshotDelete({ 'job-id': 'j', tag: 's1', devices: ['fmt-vda'] }), 'snapshot-delete', { 'job-id': 'j', tag: 's1', devices: ['fmt-vda'] }],
        [() => q.snapshots.blockdevSnapshots([{ node: 'fmt-vda', overlay: 'ov-vda' }]), 'transaction', { actions: [{ type: 'blockdev-snapshot', data: { node: 'fmt-vda', overlay: 'ov-vda' } }] }],
        [() => q.net.netdevAdd({ type: 'tap', id: 'hnet1', ifname: 'vbtap', script: 'no', downscript: 'no' }), 'netdev_add', { type: 'tap', id: 'hnet1', ifname: 'vbtap', script: 'no', downscript: 'no' }],
        [() => q.net.netdevDel('hnet1'), 'netdev_del', { id: 'hnet1' }],
        [() => q.net.setLink('nic0', false), 'set_link', { name: 'nic0', up: false }],
        [() => q.misc.deviceDel('vdb'), 'device_del', { id: 'vdb' }],
        [() => q.misc.objectDel('mig-tls'), 'object-del', { id: 'mig-tls' }],
      ];
      for (const [call] of calls) await call();
      expect(qmp.received.slice(1).map(({ execute, arguments: args }) => [execute, args])).toEqual(calls.map(([, execute, args]) => [execute, args]));
    });

    it('waits for one event and gives up after its timeout', async () => {
          client = await Qmp.connect(qmp.path);
      const deleted = client.nextEvent('DEVICE_DELETED', (data) => data.device === 'vdb', 5_000, () => new Error('late'));
      qmp.send({ event: 'DEVICE_DELETED', data: { device: 'vda', path: '/machine/peripheral/vda' }, timestamp: { seconds: 1, microseconds: 0 } });
      qmp.send({ event: 'DEVICE_DELETED', data: { device: 'vdb', path: '/machine/peripheral/vdb' }, timestamp: { seconds: 1, microseconds: 1 } });
      await expect(deleted.promise).resolves.toMatchObject({ data: { device: 'vdb' } });
      await expect(client.nextEvent('DEVICE_DELETED', () => true, 10, () => new Error('late')).promise).rejects.toThrow('late');
    });
  });
});

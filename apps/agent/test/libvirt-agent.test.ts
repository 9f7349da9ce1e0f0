import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
import { copyFile, mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { OperationNames, VirtError, type AsyncOperation, type OperationName, type OperationRequest } from '@virtbus/api-contract';
import { VirtClient } from '@virtbus/client';
import { decodeLibvirtXdr, LibvirtClient, LibvirtDomainEvents } from '@virtbus/drivers';
import { decodePng, ensureTestGuest, GUEST_FLAGS, GUEST_MARKERS, GUEST_VGA_MARKER, GuestShell, hasBinaryOrSkip, litPixels, rejectsWith, spawnAgent, startLibvirt, storedNodeEvents, tearDown, useNatsBus, VIRSH, waitFor, type AgentProcess, type Libvirt } from '@virtbus/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const LIBVIRTD = hasBinaryOrSkip('libvirtd') && hasBinaryOrSkip('virsh');
const NODE = 'lvnode';
const QEMU_NODE = 'lvqemu';
const QEMU = LIBVIRTD && hasBinaryOrSkip('qemu-system-x86_64');

/** What a domain operation of the table is run with: the running domain, a shut-off one, and what earlier rows returned. */
interface TableContext {
  id: string;
  spare: string;
  mac: string;
  file: string;
  cdrom: string;
  imported: string;
  session?: string;
  /** libvirt's XML of the running domain, once its devices and resources changed. */
  xml?: string;
  /** Backing images of disk vdb (qemu:///system): its top is pulled down to `base`, then committed into it. */
  base: string;
  copy: string;
  /** Checks after a row that worked (the guest sees a hotplugged disk, a block job ends). */
  afterRow?: (operation: OperationName, result: unknown) => Promise<void>;
  /** What the exec and screenshot rows answered. */
  exec?: { stdout: string; exitCode: number };
  screenshot?: string;
}
type Row<N extends OperationName> = {
  /** The capability group (as probe() names it) the operation needs; absent: every driver answers it. */
  needs?: string;
  request: (ctx: TableContext) => OperationRequest<N>;
  /** Keeps a result later rows need. */
  keep?: (result: unknown, ctx: TableContext) => void;
  /** Acts on what an earlier row makes (a snapshot, a save file, a plugged device): without it, this stable error. */
  after?: { operation: OperationName; missing: string };
  /** Needs a second node, which the table has not: where supported, this stable error (the migration test below does it). */
  alone?: string;
};
/** One row per domain operation of the contract, in an order that leaves the domain running. */
const DOMAIN_TABLE: { [N in OperationName as N extends `domain.${string}` ? N : never]: Row<N> } = {
  'domain.list': { request: () => ({}) },
  'domain.get': { request: ({ id }) => ({ id }) },
  'domain.define': { request: ({ spare }) => ({ name: `${spare}-d`, driver: 'libvirt' }) },
  'domain.update': { request: ({ spare }) => ({ id: `${spare}-d`, config: { memory: 64 } }) },
  'domain.undefine': { request: ({ spare }) => ({ id: `${spare}-d` }) },
  'domain.create': { request: ({ spare }) => ({ name: `${spare}-c`, driver: 'libvirt', vcpus: 1, memory: 64 }) },
  'domain.state': { request: ({ spare }) => ({ id: `${spare}-c`, change: { action: 'destroy' } }) },
  'domain.state.get': { request: ({ id }) => ({ id }) },
  'domain.import': { needs: 'native-xml', request: ({ imported }) => ({ domains: [imported] }) },
  'domain.stats': { needs: 'stats', request: ({ id }) => ({ id }) },
  'domain.stats.all': { request: () => ({}) },
  'domain.exec': { needs: 'exec', request: ({ id }) => ({ id, exec: { command: ['/bin/sh', '-c', 'echo lv-$((6*7))'] } }), keep: (result, ctx) => (ctx.exec = result as TableContext['exec']) },
  'domain.console.read': { needs: 'console', request: ({ id }) => ({ id }) },
  'domain.console.attach': { needs: 'console', request: ({ id }) => ({ id }), keep: (result, ctx) => (ctx.session = (result as { session: string }).session) },
  'domain.console.write': { needs: 'console', request: ({ id, session }) => ({ id, session: session ?? 'none', data: 'DQ==' }) },
  'domain.console.detach': { needs: 'console', request: ({ id, session }) => ({ id, session: session ?? 'none' }) },
  'domain.migrate': { needs: 'migration', request: ({ id }) => ({ id, migration: { destination: 'nowhere' } }), alone: 'AGENT_UNREACHABLE' },
  'domain.interfaces': { request: ({ id }) => ({ id }) },
  'domain.nic.link': { needs: 'nics', request: ({ id, mac }) => ({ id, mac, link: 'up' }) },
  'domain.nic.attach': { needs: 'nics', request: ({ id }) => ({ id, nic: { type: 'user', mac: '52:54:00:aa:bb:cc' } }) },
  'domain.nic.detach': { needs: 'nics', request: ({ id }) => ({ id, mac: '52:54:00:aa:bb:cc', timeout: 60 }), after: { operation: 'domain.nic.attach', missing: 'INVALID_ARG' } },
  // the agent keeps snapshot metadata: the list is every driver's, the others act on the snapshot made above
  'domain.snapshot.list': { request: ({ id }) => ({ id }) },
  'domain.snapshot.create': { needs: 'snapshots', request: ({ id }) => ({ id, snapshot: { name: 's1' } }) },
  'domain.snapshot.get': { needs: 'snapshots', request: ({ id }) => ({ id, snapshot: 's1' }), after: { operation: 'domain.snapshot.create', missing: 'NOT_FOUND' } },
  'domain.snapshot.revert': { needs: 'snapshots', request: ({ id }) => ({ id, snapshot: 's1' }), after: { operation: 'domain.snapshot.create', missing: 'NOT_FOUND' } },
  'domain.snapshot.delete': { needs: 'snapshots', request: ({ id }) => ({ id, snapshot: 's1' }), after: { operation: 'domain.snapshot.create', missing: 'NOT_FOUND' } },
  'domain.disk.attach': { needs: 'disks', request: ({ id, file }) => ({ id, attach: { disk: { source: { path: file }, format: 'raw', target: 'vdz', readonly: true } } }) },
  'domain.media.change': { needs: 'disks', request: ({ id, cdrom }) => ({ id, target: cdrom, change: {} }) },
  'domain.disk.detach': { needs: 'disks', request: ({ id }) => ({ id, target: 'vdz', detach: { timeout: 60 } }), after: { operation: 'domain.disk.attach', missing: 'INVALID_ARG' } },
  'domain.vcpus.set': { needs: 'resources', request: ({ id }) => ({ id, set: { count: 1 } }) },
  'domain.memory.set': { needs: 'resources', request: ({ id }) => ({ id, set: { memory: 96 } }) },
  'domain.xml': { needs: 'native-xml', request: ({ id }) => ({ id }), keep: (result, ctx) => (ctx.xml = (result as { xml: string }).xml) },
  'domain.graphics.attach': { needs: 'graphics', request: ({ id }) => ({ id }), keep: (result, ctx) => (ctx.session = (result as { session: string }).session) },
  'domain.graphics.write': { needs: 'graphics', request: ({ id, session }) => ({ id, session: session ?? 'none' }) },
  'domain.graphics.detach': { needs: 'graphics', request: ({ id, session }) => ({ id, session: session ?? 'none' }) },
  'domain.screenshot': { needs: 'graphics', request: ({ id }) => ({ id }), keep: (result, ctx) => (ctx.screenshot = (result as { data: string }).data) },
  'domain.sendKey': { needs: 'graphics', request: ({ id }) => ({ id, keys: ['a'] }) },
  // from a disk image in the node's pool (the agent makes the overlay and the seed; libvirt opens them at start)
  'domain.define.image': { request: ({ spare }) => ({ domain: { name: `${spare}-i`, driver: 'libvirt' }, image: { pool: 'lvpool', volume: 'img.qcow2' } }) },
  'domain.agent.ping': { needs: 'guest-agent', request: ({ id }) => ({ id }) },
  'domain.agent.info': { needs: 'guest-agent', request: ({ id }) => ({ id }) },
  'domain.interface.addresses': { needs: 'guest-agent', request: ({ id }) => ({ id }) },
  'domain.fs.freeze': { needs: 'guest-agent', request: ({ id }) => ({ id }) },
  'domain.fs.thaw': { needs: 'guest-agent', request: ({ id }) => ({ id }) },
  'domain.user.password': { needs: 'guest-agent', request: ({ id }) => ({ id, user: 'root', password: 'x' }) },
  'domain.time.get': { needs: 'guest-agent', request: ({ id }) => ({ id }) },
  'domain.time.set': { needs: 'guest-agent', request: ({ id }) => ({ id }) },
  'domain.qemu.monitor': { needs: 'qemu-monitor', request: ({ id }) => ({ id, monitor: { command: 'query-status' } }) },
  'domain.lxc.enter': { needs: 'lxc-enter', request: ({ id }) => ({ id, enter: { command: ['true'] } }) },
  // vdb: top over mid over base; the pull keeps base, the commit merges the top into it and pivots; the copy of vda stays ready until aborted
  'domain.block.pull': { needs: 'block-jobs', request: ({ id, base }) => ({ id, target: 'vdb', body: { base } }) },
  'domain.block.commit': { needs: 'block-jobs', request: ({ id }) => ({ id, target: 'vdb', body: {} }) },
  'domain.block.copy': { needs: 'block-jobs', request: ({ id, copy }) => ({ id, target: 'vda', body: { destination: copy } }) },
  'domain.blockjob.get': { needs: 'block-jobs', request: ({ id }) => ({ id, target: 'vda' }) },
  'domain.blockjob.abort': { needs: 'block-jobs', request: ({ id }) => ({ id, target: 'vda', abort: {} }) },
  'domain.block.resize': { needs: 'block-jobs', request: ({ id }) => ({ id, target: 'vda', resize: { sizeBytes: 1 << 21 } }) },
  'domain.block.iotune': { needs: 'block-jobs', request: ({ id }) => ({ id, target: 'vda', tune: { totalIopsSec: 1000 } }) },
  // last: these stop the domain (a restore names no domain, only the file the save above wrote, and starts it again)
  'domain.save': { needs: 'save-restore', request: ({ id }) => ({ id, target: { pool: 'lvpool', volume: 'save' } }) },
  'domain.restore': { needs: 'save-restore', request: () => ({ pool: 'lvpool', volume: 'save' }), after: { operation: 'domain.save', missing: 'NOT_FOUND' } },
  'domain.managedsave': { needs: 'save-restore', request: ({ id }) => ({ id }) },
  'domain.managedsave.get': { request: ({ id }) => ({ id }) },
  'domain.managedsave.remove': { needs: 'save-restore', request: ({ id }) => ({ id }), after: { operation: 'domain.managedsave', missing: 'OPERATION_INVALID' } },
};

/** Whether the middle of the test guest's VGA marker block has its colour in a base64 PNG screenshot (QEMU's PPM scales the 6-bit VGA DAC by 4: 168 for 170). */
const markerShown = (png: string) => markerColour(png).every((value, i) => Math.abs(value - GUEST_VGA_MARKER.rgb[i]!) <= 4);
function markerColour(png: string): number[] {
  const image = decodePng(Buffer.from(png, 'base64'));
  const { block, columns, rows } = GUEST_VGA_MARKER;
  const [x, y] = [Math.floor(((block.column + block.width / 2) * image.width) / columns), Math.floor(((block.row + block.height / 2) * image.height) / rows)];
  const at = (y * image.width + x) * image.channels;
  return [...image.pixels.subarray(at, at + 3)];
}

/** Runs every domain operation of the contract on `node`: each works, or answers OPERATION_UNSUPPORTED because the driver lacks the capability it needs. */
async function runDomainTable(client: VirtClient, node: string, ctx: TableContext): Promise<Record<string, string>> {
  const outcomes: Record<string, string> = {};
  for (const [operation, row] of Object.entries(DOMAIN_TABLE) as [OperationName, Row<OperationName>][]) {
    const outcome = await client.call(node, operation, row.request(ctx) as never).then(
      (result: unknown) => {
        row.keep?.(result, ctx);
        return ctx.afterRow ? ctx.afterRow(operation, result).then(() => 'ok') : 'ok';
      },
      (error: unknown) => (VirtError.is(error) ? `${error.code} (${error.message.slice(0, 200)})` : String(error)),
    );
    outcomes[operation] = outcome;
  }
  return outcomes;
}
const supported = (row: Row<OperationName>, capabilities: readonly string[]) => row.needs === undefined || capabilities.includes(row.needs);
/** What the table must answer: `ok` where the driver declares the capability, else OPERATION_UNSUPPORTED (or, acting on what an unsupported row would have made, its stable error). */
const expectedOutcomes = (capabilities: readonly string[]) =>
  Object.fromEntries(
    Object.entries(DOMAIN_TABLE).map(([operation, row]: [string, Row<OperationName>]) => {
      const maker = row.after && (DOMAIN_TABLE as Record<string, Row<OperationName>>)[row.after.operation]!;
      if (row.after && maker && !supported(maker, capabilities)) return [operation, expect.stringMatching(new RegExp(`^${row.after.missing} `))];
      if (row.alone && supported(row, capabilities)) return [operation, expect.stringMatching(new RegExp(`^${row.alone} `))];
      return [operation, supported(row, capabilities) ? 'ok' : expect.stringMatching(/^OPERATION_UNSUPPORTED /)];
    }),
  );

/** The agent with `--drivers libvirt --libvirt-uri test+unix:///default?socket=…` against a private libvirtd, over NATS. */
describe.skipIf(!LIBVIRTD)('agent with driver libvirt against a real libvirtd', () => {
  const tag = `vbla${randomBytes(3).toString('hex')}`;
  let root: string;
  let libvirt: Libvirt;
  const bus = useNatsBus();
  let client: VirtClient;
  let agent: AgentProcess | undefined;
  let uri: string;
  /** Holds test:///default open from before the agent starts (libvirtd frees it when its last connection goes). */
  let holder: LibvirtClient | undefined;
  const old = { name: `${tag}-old`, uuid: randomUUID(), id: 0 };
  const virshOn = async (on: string, ...args: string[]) =>
    (await run(VIRSH, ['-q', '-c', on, ...args]).catch((error: { stderr?: string }) => Promise.reject(new Error(`virsh ${args.join(' ')}: ${error.stderr}\nagent: ${agent?.output().slice(-3000)}`)))).stdout.trim();
  const virsh = (...args: string[]) => virshOn(uri, ...args);
  /** A domain libvirt holds before virtbus imports it, with a disk, a NIC and a VNC display (its config comes from this XML). */
  const defineForImport = async (on: string, type: string, name: string, extra = '') => {
    const xml = join(root, `${name}.xml`);
    await writeFile(
      xml,
      `<domain type='${type}'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><devices>${extra}` +
        `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${join(root, 'tbl.img')}'/><target dev='vda' bus='virtio'/></disk>` +
        `<interface type='network'><source network='default'/><mac address='52:54:00:12:34:56'/><model type='e1000'/></interface>` +
        `<graphics type='vnc' autoport='yes'/></devices></domain>`,
    );
    await virshOn(on, 'define', xml);
  };
  /** The table on a running domain of `node`, then its domains go. */
  /** `restart` (qemu:///system): the agent goes (SIGKILL) while a block copy runs; the next one follows it again. */
  const domainTable = async (node: string, on: string, type: string, restart?: () => Promise<void>) => {
    expect(Object.keys(DOMAIN_TABLE).sort()).toEqual(OperationNames.filter((name) => name.startsWith('domain.')).sort());
    const image = (name: string) => join(root, `${type}-${name}.qcow2`);
    const ctx: TableContext = { id: `${tag}-${type}`, spare: `${tag}-${type}x`, mac: '', file: join(root, 'tbl.img'), cdrom: '', imported: `${tag}-${type}i`, base: image('base'), copy: image('copy') };
    const qemu = type === 'qemu';
    // QEMU runs the test guest (it sees hotplugged disks, releases unplugged ones) with a backing chain on vdb for the block jobs
    const guest = qemu ? await ensureTestGuest() : undefined;
    if (qemu) for (const [name, backing] of [['base'], ['mid', 'base'], ['top', 'mid']] as const) await run('qemu-img', ['create', '-q', '-f', 'qcow2', ...(backing ? ['-b', image(backing), '-F', 'qcow2', image(name)] : [image(name), '1M'])]);
    await writeFile(ctx.file, Buffer.alloc(1 << 20));
    await writeFile(`${ctx.file}.iso`, Buffer.alloc(1 << 20));
    await defineForImport(on, type, ctx.imported, type === 'qemu' ? '<emulator>/usr/bin/qemu-system-x86_64</emulator>' : '');
    // a disk from the node's storage pool: the agent resolves it to the volume's path for libvirt
    const pool = join(root, `${type}-pool`);
    await client.call(node, 'pool.define', { name: 'lvpool', type: 'dir', target: pool });
    await client.call(node, 'pool.state', { pool: 'lvpool', change: { action: 'build' } });
    await client.call(node, 'pool.state', { pool: 'lvpool', change: { action: 'start' } });
    for (const name of ['data.qcow2', 'img.qcow2']) await client.call(node, 'volume.create', { pool: 'lvpool', volume: { name, capacity: 1 << 20 } });
    // persistent (domain.create would make it transient: gone once saved)
    const domain = await client.call(node, 'domain.define', {
      name: ctx.id,
      driver: 'libvirt',
      vcpus: 1,
      memory: 128,
      // qcow2 (the pool's default) for the internal snapshots of the table
      disks: [
        { source: { pool: 'lvpool', volume: 'data.qcow2' } },
        { source: { path: `${ctx.file}.iso` }, format: 'raw', device: 'cdrom', bus: 'ide' },
        ...(qemu ? [{ source: { path: image('top') }, format: 'qcow2' as const, target: 'vdb' }] : []),
      ],
      // qemu-ga in the initramfs: the guest-agent, exec and graphics rows
      ...(guest ? { os: { kernel: guest.kernel, initrd: guest.agentInitrd, cmdline: guest.cmdline } } : {}),
      // test:/// has libvirt's network `default`; the private daemon's qemu:///system has none
      nics: [{ type: 'user' }, ...(type === 'test' ? [{ type: 'network' as const, source: 'default' }] : [])],
      graphics: { type: 'vnc' },
    });
    await client.call(node, 'domain.state', { id: ctx.id, change: { action: 'start', paused: qemu } });
    if (qemu) {
      // the console opens before the guest runs (libvirt keeps no history): its shell prompt is not missed
      const shell = await GuestShell.open(client, bus.nc, node, ctx.id);
      await client.call(node, 'domain.state', { id: ctx.id, change: { action: 'resume' } });
      await waitFor('GUEST-READY', () => shell.text().includes(GUEST_MARKERS.ready), 180_000, async () => shell.text().slice(-2000));
      await shell.close();
      // the guest's qemu-ga answers through libvirt once it booted; /init draws its VGA marker after starting qemu-ga
      await waitFor('qemu-ga through libvirt', () => client.call(node, 'domain.agent.ping', { id: ctx.id }).then(() => true, () => false), 180_000);
      await waitFor('the VGA marker in a screenshot', async () => markerShown((await client.call(node, 'domain.screenshot', { id: ctx.id })).data), 60_000);
      // a quiesced snapshot: the agent freezes through virDomainFSFreeze, libvirt snapshots, the agent thaws
      expect(await client.call(node, 'domain.snapshot.create', { id: ctx.id, snapshot: { name: 'quiesced', quiesce: true } })).toMatchObject({ name: 'quiesced' });
      expect(await client.call(node, 'domain.fs.thaw', { id: ctx.id })).toEqual({ filesystems: 0 });
      // a console session per look, closed again (the table's console rows need the console meanwhile); the agent hands
      // a new session the console's history, so each look's markers are its own (computed by the guest's shell); a look
      // is tried again while unanswered (input typed before the guest's shell reads is dropped, and libvirt's console
      // stream may end under the agent, which opens a new one for the next session)
      let looks = 0;
      const disksInGuest = async () => {
        const marker = 5000 + ++looks;
        const pattern = new RegExp(`L${marker}\\r?\\n([\\s\\S]*?)M${marker}`);
        const listing = await waitFor(
          'ls /sys/block in the guest',
          async () => {
            const look = await GuestShell.open(client, bus.nc, node, ctx.id);
            try {
              await look.type(`echo L$((${marker}+0)); ls /sys/block; echo M$((${marker}+0))`);
              return await waitFor('its answer', () => pattern.exec(look.text())?.[1], 4_000).catch(() => undefined);
            } catch {
              return undefined;
            } finally {
              await look.close();
            }
          },
          90_000,
        );
        return listing.split(/\s+/).filter((name) => name.startsWith('vd')).length;
      };
      const before = await disksInGuest();
      const finished = async (operation: unknown, status: string) =>
        expect(await waitFor(`operation ${status}`, async () => {
          const now = await client.call(node, 'operation.get', { id: (operation as AsyncOperation).id });
          return now.status === 'running' ? undefined : now;
        }, 60_000)).toMatchObject({ status });
      let copy: unknown;
      ctx.afterRow = async (operation, result) => {
        if (operation === 'domain.disk.attach') await waitFor('the hotplugged disk in the guest', async () => (await disksInGuest()) === before + 1, 60_000);
        if (operation === 'domain.disk.detach') await waitFor('the unplugged disk gone from the guest', async () => (await disksInGuest()) === before, 60_000);
        if (operation === 'domain.block.pull' || operation === 'domain.block.commit') await finished(result, 'success');
        if (operation === 'domain.block.copy') copy = result;
        if (operation === 'domain.blockjob.get' && restart) {
          expect(result).toMatchObject({ target: 'vda', type: 'COPY' });
          // READY reached the stream before the agent goes (one arriving while no agent runs is libvirt's alone)
          await waitFor('the copy READY stored', async () =>
            (await storedNodeEvents(bus.nc, node)).some((event) => event.uuid === domain.uuid && JSON.stringify((event as { details?: object }).details) === JSON.stringify({ device: 'vda', jobType: 'COPY', status: 'READY' })),
          30_000);
          // the next agent finds the copy libvirt still runs and makes it an operation again (its cancel is the abort row's)
          await restart();
          copy = await waitFor('the copy followed again', async () =>
            (await client.call(node, 'operation.list', {})).operations.find((entry) => entry.status === 'running' && entry.description.startsWith('block copy of vda')),
          30_000);
        }
        if (operation === 'domain.blockjob.abort') await finished(copy, 'cancelled');
        if (operation === 'domain.block.iotune') expect(result).toMatchObject({ totalIopsSec: 1000, totalBytesSec: 0 });
        if (operation === 'domain.qemu.monitor') {
          // QEMU's own answer through libvirt-qemu; the agent shows the domain tainted, as libvirt does
          expect(result).toMatchObject({ return: { status: 'running', running: true } });
          expect((await client.call(node, 'domain.get', { id: ctx.id })).tainted).toContain('custom-monitor');
        }
      };
    }
    ctx.mac = domain.config.nics[0]!.mac!;
    ctx.cdrom = domain.config.disks[1]!.target ?? 'hda';
    const [driver] = (await client.call(node, 'node.info', {})).drivers;
    try {
      expect(await runDomainTable(client, node, ctx)).toEqual(expectedOutcomes(driver!.capabilities));
      if (qemu) {
        // libvirt-qemu's pass-through: the table's monitor row must work here
        expect(driver!.capabilities).toContain('qemu-monitor');
        // the guest's own output, and its screen: not blank, with the marker its /init draws on the VGA console
        expect(ctx.exec).toMatchObject({ exitCode: 0, stdout: 'lv-42\n' });
        expect(litPixels(decodePng(Buffer.from(ctx.screenshot ?? '', 'base64')))).toBeGreaterThan(0);
        expect(markerShown(ctx.screenshot ?? ''), `marker colour ${markerColour(ctx.screenshot ?? '').join()}`).toBe(true);
      }
      // rendered for libvirt: VNC on a unix socket (never a TCP port), the cdrom, the balloon target the table set
      const xml = ctx.xml ?? '';
      expect(xml).toMatch(/<graphics type='vnc'[^>]*>\s*<listen type='socket'/);
      // the cdrom, ejected by the table where the driver changes media
      if (driver!.capabilities.includes('disks')) expect([xml.includes(`<target dev='${ctx.cdrom}'`), xml.includes(`${ctx.file}.iso`)]).toEqual([true, false]);
      else expect(xml).toContain(`<source file='${ctx.file}.iso'`);
      expect(xml).toContain(`<source file='${join(pool, 'data.qcow2')}'`);
      if (type === 'test') expect(xml).toMatch(/<interface type='network'>[\s\S]*?<source network='default'/);
      // QEMU's XML shows the balloon the guest reached so far (between the target and the start); test:/// shows the target
      const current = Number(/<currentMemory unit='KiB'>(\d+)<\/currentMemory>/.exec(xml)?.[1]);
      if (qemu) expect([current >= 98304, current <= 131072]).toEqual([true, true]);
      else expect(current).toBe(98304);
      if (qemu) {
        // the jobs' BLOCK_JOB events name the disk, as the qemu driver's do; the commit pivoted vdb onto its base
        const jobs = (await storedNodeEvents(bus.nc, node)).filter((event) => event.uuid === domain.uuid && (event as { event?: string }).event === 'BLOCK_JOB');
        expect(jobs.map((event) => (event as { details?: object }).details)).toEqual(
          expect.arrayContaining([
            { device: 'vdb', jobType: 'PULL', status: 'COMPLETED' },
            { device: 'vdb', jobType: 'ACTIVE_COMMIT', status: 'READY' },
            { device: 'vdb', jobType: 'ACTIVE_COMMIT', status: 'COMPLETED' },
            { device: 'vda', jobType: 'COPY', status: 'READY' },
            { device: 'vda', jobType: 'COPY', status: 'CANCELED' },
          ]),
        );
        expect((await client.call(node, 'domain.get', { id: ctx.id })).config.disks[2]).toMatchObject({ target: 'vdb', source: { path: ctx.base } });
      }
      const imported = await client.call(node, 'domain.get', { id: ctx.imported });
      expect(imported.config).toMatchObject({
        disks: [{ source: { path: ctx.file }, format: 'raw', bus: 'virtio', device: 'disk' }],
        nics: [{ type: 'network', source: 'default', mac: '52:54:00:12:34:56', model: 'e1000' }],
        graphics: { type: 'vnc' },
      });
    } finally {
      for (const id of [ctx.id, `${ctx.spare}-c`, `${ctx.spare}-i`, ctx.imported]) {
        await client.call(node, 'domain.state', { id, change: { action: 'destroy' } }).catch(() => 'not running');
        await client.call(node, 'domain.undefine', { id }).catch(() => 'not defined');
      }
    }
  };
  const startAgent = () =>
    spawnAgent({ node: NODE, natsUrl: bus.server.url, stateDir: join(root, 'agent'), drivers: 'libvirt', extraArgs: ['--libvirt-uri', uri], env: { VIRTBUS_METRICS_ADDRESS: 'off' } });

  beforeAll(async () => {
    // short path: unix socket paths are limited to 107 bytes
    root = await mkdtemp(join('/tmp', `${tag}-`));
    libvirt = await startLibvirt(join(root, 'lv'));
    uri = `test+unix:///default?socket=${libvirt.socket}`;
    client = new VirtClient(bus.nc);
    // a domain the host's libvirt already runs before virtbus arrives
    holder = await LibvirtClient.connect({ socket: libvirt.socket, uri: 'test:///default' });
    const xml = join(root, 'old.xml');
    await writeFile(xml, `<domain type='test'><name>${old.name}</name><uuid>${old.uuid}</uuid><description>kept by libvirt</description><memory unit='MiB'>96</memory><vcpu>2</vcpu><os><type>hvm</type></os></domain>`);
    await virsh('define', xml);
    await virsh('start', old.name);
    old.id = Number(await virsh('domid', old.name));
    agent = await startAgent();
  });

  afterAll(async () => {
    await tearDown(agent, holder, libvirt, root);
  });

  it('reports the driver with libvirt\'s hypervisor and runs the lifecycle in libvirt, adopting after an agent restart', async () => {
    const info = await client.call(NODE, 'node.info', {});
    expect(info.drivers).toEqual([expect.objectContaining({ name: 'libvirt', domainTypes: ['libvirt'], available: true, capabilities: ['lifecycle', 'stats', 'snapshots', 'save-restore', 'native-xml', 'resources', 'hypervisor:test'] })]);

    const name = `${tag}-web`;
    const domain = await client.call(NODE, 'domain.define', { name, driver: 'libvirt', vcpus: 2, memory: 128 });
    expect(domain).toMatchObject({ name, state: 'shutoff', driver: 'libvirt', hypervisor: 'test' });
    // libvirt holds no definition before the first start
    await rejectsWith(client.call(NODE, 'domain.xml', { id: name }), 'NO_DOMAIN');
    const steps = [
      [{ action: 'start' }, 'running', 'booted', 'running'],
      [{ action: 'suspend' }, 'paused', 'user', 'paused'],
      [{ action: 'resume' }, 'running', 'unpaused', 'running'],
      [{ action: 'shutdown', timeout: 5 }, 'shutoff', 'shutdown', 'shut off'],
      [{ action: 'start' }, 'running', 'booted', 'running'],
    ] as const;
    for (const [change, state, reason, virshState] of steps) {
      const after = await client.call(NODE, 'domain.state', { id: name, change });
      expect([after.state, after.reason]).toEqual([state, reason]);
      expect(await virsh('domstate', name)).toBe(virshState);
    }
    expect(await virsh('dominfo', name)).toMatch(/Max memory:\s+131072 KiB/);
    const { xml } = await client.call(NODE, 'domain.xml', { id: name });
    expect(xml.trim()).toBe(await virsh('dumpxml', name));
    expect(xml).toContain(`<uuid>${domain.uuid}</uuid>`);
    expect(await client.call(NODE, 'domain.stats', { id: name })).toMatchObject({ state: 'running', memory: { maximumBytes: 128 * 1024 * 1024 }, vcpu: { current: 2 } });

    // the agent goes, libvirt keeps the domain running; the next agent reads its state back
    // (test:///default lives in libvirtd while a connection holds it: this one does, as a host's other users would)
    await agent!.stop();
    agent = undefined;
    expect(await virsh('domstate', name)).toBe('running');
    agent = await startAgent();
    expect(await client.call(NODE, 'domain.get', { id: name })).toMatchObject({ state: 'running' });

    expect(await client.call(NODE, 'domain.state', { id: name, change: { action: 'destroy' } })).toMatchObject({ state: 'shutoff', reason: 'destroyed' });
    await client.call(NODE, 'domain.undefine', { id: name });
    await rejectsWith(client.call(NODE, 'domain.get', { id: name }), 'NO_DOMAIN');
    expect(await virsh('list', '--all', '--name')).not.toContain(name);
  });

  it('publishes what virsh does to a domain as numbered lifecycle events, in order, through the outbox', async () => {
    const name = `${tag}-ext`;
    const { uuid } = await client.call(NODE, 'domain.define', { name, driver: 'libvirt' });
    await client.call(NODE, 'domain.state', { id: name, change: { action: 'start' } });
    // from the agent's own STARTED on (DEFINED came before)
    const eventsOf = async () => (await storedNodeEvents(bus.nc, NODE)).filter((event) => event.uuid === uuid && event.type !== 'DEFINED');
    const startedAt = (await waitFor('STARTED stored', async () => (await eventsOf())[0], 10_000)).seq;
    for (const command of ['suspend', 'resume', 'destroy', 'start']) {
      const before = (await eventsOf()).length;
      await virsh(command, name);
      await waitFor(`virsh ${command} published`, async () => (await eventsOf()).length > before, 10_000);
    }
    const events = await eventsOf();
    expect(events.map((event) => [event.type, event.detail, event.state, event.reason])).toEqual([
      ['STARTED', 'BOOTED', 'running', 'booted'],
      ['SUSPENDED', 'PAUSED', 'paused', 'user'],
      ['RESUMED', 'UNPAUSED', 'running', 'unpaused'],
      ['STOPPED', 'DESTROYED', 'shutoff', 'destroyed'],
      ['STARTED', 'BOOTED', 'running', 'booted'],
    ]);
    expect(events.map((event) => event.seq)).toEqual(events.map((_, i) => startedAt + i));
    expect(await client.call(NODE, 'domain.get', { id: name })).toMatchObject({ state: 'running', reason: 'booted' });
    await client.call(NODE, 'domain.state', { id: name, change: { action: 'destroy' } });
    await client.call(NODE, 'domain.undefine', { id: name });
  });

  it('refuses what the driver cannot render yet', async () => {
    await rejectsWith(
      client.call(NODE, 'domain.define', { name: `${tag}-filter`, driver: 'libvirt', nics: [{ type: 'bridge', source: 'br0', filter: 'web' }] }),
      'OPERATION_UNSUPPORTED',
    );
  });

  it('imports a domain virsh defined and started before the agent: it keeps running with its libvirt id and XML, then stops and starts through virtbus', async () => {
    await rejectsWith(client.call(NODE, 'domain.get', { id: old.name }), 'NO_DOMAIN');
    const { imported, remaining } = await client.call(NODE, 'domain.import', { domains: [old.name] });
    expect(remaining).toBe(0);
    expect(imported).toEqual([
      expect.objectContaining({ name: old.name, uuid: old.uuid, driver: 'libvirt', hypervisor: 'test', state: 'running', id: old.id, config: expect.objectContaining({ memory: 96, vcpus: 2 }) }),
    ]);
    expect(await virsh('domid', old.name)).toBe(String(old.id));
    expect(await client.call(NODE, 'domain.get', { id: String(old.id) })).toMatchObject({ uuid: old.uuid });
    const events = (await storedNodeEvents(bus.nc, NODE)).filter((event) => event.uuid === old.uuid);
    expect(events.map((event) => [event.type, event.state])).toEqual([
      ['DEFINED', 'shutoff'],
      ['STARTED', 'running'],
    ]);
    await rejectsWith(client.call(NODE, 'domain.import', { domains: [old.name] }), 'DOMAIN_EXISTS');
    await rejectsWith(client.call(NODE, 'domain.import', { domains: [`${tag}-none`] }), 'NO_DOMAIN');

    // all the rest: test:///default's own running domain `test`; then nothing is left
    const rest = await client.call(NODE, 'domain.import', {});
    expect(rest.imported.map((domain) => [domain.name, domain.state, domain.id])).toEqual([['test', 'running', Number(await virsh('domid', 'test'))]]);
    expect(await client.call(NODE, 'domain.import', {})).toEqual({ imported: [], remaining: 0 });

    // libvirt's non-lifecycle events reach the stream in the contract's catalogue
    await virsh('desc', old.name, '--live', '--title', 'imported');
    const metadata = await waitFor('METADATA_CHANGE stored', async () => (await storedNodeEvents(bus.nc, NODE)).find((event) => event.uuid === old.uuid && (event as { event?: string }).event === 'METADATA_CHANGE'), 10_000);
    expect(metadata).toMatchObject({ kind: 'domain.event', name: old.name, eventId: 23, details: { metadata: 'title' } });

    // stopped and started through virtbus: libvirt's XML stays the definition (a define from virtbus' config would drop the description)
    expect(await client.call(NODE, 'domain.state', { id: old.name, change: { action: 'destroy' } })).toMatchObject({ state: 'shutoff', reason: 'destroyed' });
    expect(await virsh('domstate', old.name)).toBe('shut off');
    const started = await client.call(NODE, 'domain.state', { id: old.name, change: { action: 'start' } });
    expect(started).toMatchObject({ state: 'running', id: Number(await virsh('domid', old.name)) });
    expect(started.id).not.toBe(old.id);
    expect(await virsh('dumpxml', old.name)).toContain('<description>kept by libvirt</description>');
    await client.call(NODE, 'domain.state', { id: old.name, change: { action: 'destroy' } });
    await client.call(NODE, 'domain.undefine', { id: old.name });
    expect(await virsh('list', '--all', '--name')).not.toContain(old.name);
  });

  it('runs every domain operation of the contract on test:///default: working, or OPERATION_UNSUPPORTED where the driver lacks the capability', async () => {
    await domainTable(NODE, uri, 'test');
  });

  describe.skipIf(!QEMU)('on qemu:///system (TCG)', () => {
    let qemuAgent: AgentProcess | undefined;
    const qemuUri = () => `qemu+unix:///system?socket=${libvirt.socket}`;
    // VIRTBUS_LIBVIRT_ROOT: the private libvirtd's / (its VNC sockets sit in its own /var/lib/libvirt) as the agent sees it
    const startQemuAgent = () =>
      spawnAgent({ node: QEMU_NODE, natsUrl: bus.server.url, stateDir: join(root, 'qagent'), drivers: 'libvirt', extraArgs: ['--libvirt-uri', qemuUri()], env: { VIRTBUS_METRICS_ADDRESS: 'off', VIRTBUS_LIBVIRT_ROOT: `/proc/${libvirt.libvirtdPid()}/root` } });
    beforeAll(async () => {
      qemuAgent = await startQemuAgent();
    });
    afterAll(async () => {
      // QEMU domains outlive libvirtd by design: ours go first
      const names = (await virshOn(qemuUri(), 'list', '--all', '--name').catch(() => '')).split('\n').filter((name) => name.startsWith(tag));
      for (const name of names) {
        await virshOn(qemuUri(), 'destroy', name).catch(() => 'not running');
        await virshOn(qemuUri(), 'undefine', name).catch(() => 'transient: gone with its destroy');
      }
      await tearDown(qemuAgent);
    });

    it('runs every domain operation of the contract: working, or OPERATION_UNSUPPORTED where the driver lacks the capability', async () => {
      // killed, as a crash would: a clean stop cancels the agent's operations, block jobs with them
      await domainTable(QEMU_NODE, qemuUri(), 'qemu', async () => {
        await qemuAgent!.kill();
        qemuAgent = await startQemuAgent();
      });
    }, 400_000);

    it('defines a domain from an image volume with cloud-init user-data: it boots from its cloned disk and applies the seed', async () => {
      const guest = await ensureTestGuest();
      const pool = join(root, 'img-pool');
      await client.call(QEMU_NODE, 'pool.define', { name: 'lvimg', type: 'dir', target: pool });
      await client.call(QEMU_NODE, 'pool.state', { pool: 'lvimg', change: { action: 'build' } });
      // the bootable test disk stands in for a cloud image (syslinux, then the NoCloud reader of the seed)
      await copyFile(guest.disk, join(pool, 'guest.qcow2'));
      await client.call(QEMU_NODE, 'pool.state', { pool: 'lvimg', change: { action: 'start' } });
      const name = `${tag}-cloud`;
      const domain = await client.call(QEMU_NODE, 'domain.define.image', {
        domain: { name, driver: 'libvirt', memory: 256, nics: [{ type: 'user' }] },
        image: { pool: 'lvimg', volume: 'guest.qcow2' },
        rootSize: '64M',
        cloudInit: { userData: `#cloud-config\nhostname: ${name}\n` },
      });
      expect(domain.config.disks.map((disk) => [disk.source, disk.target])).toEqual([
        [{ pool: 'lvimg', volume: `${name}-root.qcow2` }, 'vda'],
        [{ pool: 'lvimg', volume: `${name}-cidata.iso` }, 'hda'],
      ]);
      const consoleText = async () => Buffer.from((await client.call(QEMU_NODE, 'domain.console.read', { id: name })).history, 'base64').toString();
      try {
        await client.call(QEMU_NODE, 'domain.state', { id: name, change: { action: 'start', paused: true } });
        // the console opens (and keeps history) before the guest runs: nothing it prints is missed
        await consoleText();
        await client.call(QEMU_NODE, 'domain.state', { id: name, change: { action: 'resume' } });
        const seen = `${GUEST_MARKERS.nocloudDone} hostname=${name}`;
        await waitFor(seen, async () => (await consoleText()).includes(seen), 240_000, async () => `console: ${JSON.stringify((await consoleText()).slice(-2000))}`);
        expect(await consoleText()).toContain(GUEST_MARKERS.bootloader);
        const { xml } = await client.call(QEMU_NODE, 'domain.xml', { id: name });
        expect(xml).toMatch(new RegExp(`<disk type='file' device='disk'>[\\s\\S]*?<source file='${join(pool, `${name}-root.qcow2`)}'`));
        expect(xml).toMatch(new RegExp(`<disk type='file' device='cdrom'>[\\s\\S]*?<source file='${join(pool, `${name}-cidata.iso`)}'`));
      } finally {
        await client.call(QEMU_NODE, 'domain.state', { id: name, change: { action: 'destroy' } }).catch(() => 'not running');
        await client.call(QEMU_NODE, 'domain.undefine', { id: name });
      }
    }, 300_000);

    describe('live migration to a second libvirtd', () => {
      const DEST = 'lvqemu2';
      let second: Libvirt | undefined;
      let destAgent: AgentProcess | undefined;
      const destUri = () => `qemu+unix:///system?socket=${second!.socket}`;
      beforeAll(async () => {
        // its own daemon, mount and network namespace: libvirt's peer-to-peer connection and QEMU's stream go over unix sockets
        second = await startLibvirt(join(root, 'lv2'));
        destAgent = await spawnAgent({ node: DEST, natsUrl: bus.server.url, stateDir: join(root, 'dagent'), drivers: 'libvirt', extraArgs: ['--libvirt-uri', destUri()], env: { VIRTBUS_METRICS_ADDRESS: 'off' } });
      });
      afterAll(async () => {
        for (const name of (await virshOn(destUri(), 'list', '--all', '--name').catch(() => '')).split('\n').filter((name) => name.startsWith(tag))) {
          await virshOn(destUri(), 'destroy', name).catch(() => 'not running');
          await virshOn(destUri(), 'undefine', name).catch(() => 'transient');
        }
        await tearDown(destAgent, second);
      });

      it('moves a running guest peer-to-peer between the libvirtds (paused there, as asked, until resumed), its console answers, and it is gone from the source; a cancelled migration back leaves it running there', async () => {
        const guest = await ensureTestGuest();
        const name = `${tag}-mig`;
        const { uuid } = await client.call(QEMU_NODE, 'domain.define', { name, driver: 'libvirt', memory: 256, os: { kernel: guest.kernel, initrd: guest.initrd, cmdline: `${guest.cmdline} ${GUEST_FLAGS.counter}` }, nics: [] });
        const consoleOf = async (node: string) => Buffer.from((await client.call(node, 'domain.console.read', { id: uuid })).history, 'base64').toString();
        await client.call(QEMU_NODE, 'domain.state', { id: uuid, change: { action: 'start', paused: true } });
        await consoleOf(QEMU_NODE);
        await client.call(QEMU_NODE, 'domain.state', { id: uuid, change: { action: 'resume' } });
        await waitFor('GUEST-READY on the source', async () => (await consoleOf(QEMU_NODE)).includes(GUEST_MARKERS.ready), 180_000);

        // the destination libvirtd's own lifecycle events: VIR_MIGRATE_PAUSED means it never resumes the guest there (RESUMED/MIGRATED)
        const watcher = await LibvirtClient.connect({ socket: second!.socket, uri: 'qemu:///system' });
        const destLifecycle: Array<[number, number]> = [];
        let operation: AsyncOperation;
        watcher.onEvent((procedure, body) => {
          if (procedure !== LibvirtDomainEvents.lifecycle.procedure) return;
          const { msg } = decodeLibvirtXdr(LibvirtDomainEvents.lifecycle.layout, body);
          if (msg.dom.name === name) destLifecycle.push([msg.event, msg.detail]);
        });
        try {
          await watcher.call('connectDomainEventCallbackRegisterAny', { eventID: LibvirtDomainEvents.lifecycle.eventId, dom: null });
          const started = await client.migrate(QEMU_NODE, uuid, { destination: DEST, undefineSource: true, paused: true });
          operation = await waitFor('migration done', async () => {
            const op = await client.call(QEMU_NODE, 'operation.get', { id: started.id });
            return op.status !== 'running' && op;
          }, 120_000);
          expect(operation).toMatchObject({ status: 'success', migration: { phase: 'done' } });
          // libvirt's job figures fed the operation
          expect(operation.migration!.ramTransferredBytes).toBeGreaterThan(0);
          expect(operation.migration!.ramTotalBytes).toBeGreaterThanOrEqual(256 * 1024 * 1024);
          expect(await client.call(DEST, 'domain.get', { id: uuid })).toMatchObject({ name, state: 'paused', driver: 'libvirt' });
          expect(await virshOn(destUri(), 'domstate', name)).toBe('paused');
          await client.call(DEST, 'domain.state', { id: uuid, change: { action: 'resume' } });
          // events of one connection arrive in order: a RESUMED/MIGRATED would precede the resume's RESUMED/UNPAUSED
          await waitFor('RESUMED/UNPAUSED on the destination libvirtd', () => destLifecycle.some(([event, detail]) => event === 4 && detail === 0), 30_000, async () => JSON.stringify(destLifecycle));
          expect(destLifecycle.filter(([event]) => event === 4)).toEqual([[4, 0]]);
        } finally {
          await watcher.close();
        }
        expect(await virshOn(destUri(), 'domstate', name)).toBe('running');
        // QEMU's stream went over a unix socket in the destination driver's directory: none is left
        const sockets = (agentDir: string) => readdirSync(join(root, agentDir, 'drivers', 'libvirt')).filter((file) => file.endsWith('.sock'));
        expect(sockets('dagent')).toEqual([]);
        await rejectsWith(client.call(QEMU_NODE, 'domain.get', { id: uuid }), 'NO_DOMAIN');
        expect(await virshOn(qemuUri(), 'list', '--all', '--name')).not.toContain(name);

        // the same guest answers on the destination's console
        const { session } = await client.call(DEST, 'domain.console.attach', { id: uuid, force: true });
        await client.call(DEST, 'domain.console.write', { id: uuid, session, data: Buffer.from('echo vb-$((40+2))\n').toString('base64') });
        await waitFor('the guest answers on the destination', async () => (await consoleOf(DEST)).includes('vb-42'), 60_000);
        await client.call(DEST, 'domain.console.detach', { id: uuid, session });

        const lifecycle = async (node: string) => (await storedNodeEvents(bus.nc, node)).filter((event) => event.uuid === uuid && event.type !== undefined).map((event) => `${event.type}/${event.detail}`);
        // the outbox publishes after the calls answered: wait for the last of each node
        await waitFor('the destination\'s events stored', async () => (await lifecycle(DEST)).includes('RESUMED/UNPAUSED'), 30_000);
        expect(await lifecycle(DEST)).toEqual(['DEFINED/ADDED', 'STARTED/MIGRATED', 'SUSPENDED/MIGRATED', 'RESUMED/UNPAUSED']);
        await waitFor('the source\'s events stored', async () => (await lifecycle(QEMU_NODE)).includes('UNDEFINED/REMOVED'), 30_000);
        expect(await lifecycle(QEMU_NODE)).toEqual(['DEFINED/ADDED', 'STARTED/BOOTED', 'SUSPENDED/PAUSED', 'RESUMED/UNPAUSED', 'STOPPED/MIGRATED', 'UNDEFINED/REMOVED']);
        // and libvirt's figures in the source's JOB_COMPLETED, as the qemu driver's (stored before the undefine's event)
        const completed = (await storedNodeEvents(bus.nc, QEMU_NODE)).find((event) => event.uuid === uuid && (event as { event?: string }).event === 'JOB_COMPLETED');
        expect(completed).toMatchObject({ details: { params: expect.objectContaining({ operation: 'migration-out', memory_total: operation.migration!.ramTotalBytes }) } });

        // back, throttled, cancelled once RAM flows: libvirt's job is aborted, the guest runs on where it was, nothing is left on the other side
        const back = await client.migrate(DEST, uuid, { destination: QEMU_NODE, bandwidthMiBs: 1, maxDowntimeMs: 1234 });
        await waitFor('RAM being sent', async () => ((await client.call(DEST, 'operation.get', { id: back.id })).migration?.ramTransferredBytes ?? 0) > 0, 60_000);
        // set on libvirt's job before its first figures were reported
        expect(await virshOn(destUri(), 'migrate-getmaxdowntime', name)).toBe('1234');
        await client.call(DEST, 'operation.cancel', { id: back.id });
        const cancelled = await waitFor('migration ended', async () => {
          const op = await client.call(DEST, 'operation.get', { id: back.id });
          return op.status !== 'running' && op;
        }, 60_000);
        expect(cancelled.status).toBe('cancelled');
        expect(await client.call(DEST, 'domain.get', { id: uuid })).toMatchObject({ state: 'running' });
        await rejectsWith(client.call(QEMU_NODE, 'domain.get', { id: uuid }), 'NO_DOMAIN');
        expect(await virshOn(qemuUri(), 'list', '--all', '--name')).not.toContain(name);
        expect(sockets('qagent')).toEqual([]);
        const { session: again } = await client.call(DEST, 'domain.console.attach', { id: uuid, force: true });
        await client.call(DEST, 'domain.console.write', { id: uuid, session: again, data: Buffer.from('echo vb-$((40+3))\n').toString('base64') });
        await waitFor('the guest still answers on the destination', async () => (await consoleOf(DEST)).includes('vb-43'), 60_000);
        await client.call(DEST, 'domain.console.detach', { id: uuid, session: again });

        await client.call(DEST, 'domain.state', { id: uuid, change: { action: 'destroy' } });
        await client.call(DEST, 'domain.undefine', { id: uuid });
      }, 400_000);
    });
  });
});

import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { VirtError, type DomainConfig } from '@virtbus/api-contract';
import type { Logger } from 'pino';
import type {
  DomainRecord,
  IncomingOptions,
  IncomingTarget,
  MigrationCapability,
  MigrationHostFacts,
  MigrationStatus,
  OutgoingOptions,
  RunState,
} from '../driver.js';
import { diskTargets } from './command-line.js';
import type { QemuInstance } from './instance.js';
import { QmpCommandError, type QmpBlockJobInfo, type QmpMigrationInfo } from './qmp/index.js';

const execFileAsync = promisify(execFile);
const POLL_MS = 25;
/** QEMU's own defaults for downtime-limit and max-bandwidth. */
const QEMU_DEFAULT_DOWNTIME_MS = 300;
const QEMU_DEFAULT_BANDWIDTH_MIBS = 128;
const TLS_ID = 'mig-tls';
const nbdNode = (target: string) => `mig-nbd-${target}`;
const mirrorJob = (target: string) => `mig-mirror-${target}`;

/** What the migration code needs from the QEMU driver's internals. */
export interface QemuMigrationHost {
  live(domain: DomainRecord): QemuInstance;
  busy<T>(instance: QemuInstance, work: () => Promise<T>): Promise<T>;
  /** Spawns the domain's QEMU paused with extra arguments (`-incoming defer`). */
  spawn(domain: DomainRecord, extraArgs: string[]): Promise<RunState>;
  /** Ends the process; its exit is reported with this reason. */
  end(instance: QemuInstance, reason: 'migrated' | 'destroyed'): Promise<RunState>;
  binary(): string | undefined;
  /** The -cpu model the driver gives a domain of this config. */
  cpuModel(config: DomainConfig): Promise<string>;
  log(): Logger;
}

/** A TCP port free right now on `host` (QEMU is told the number; the window for a race is tiny on one node). */
export async function freeTcpPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function bracketed(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

function qmpMessage(error: unknown): string {
  if (error instanceof QmpCommandError) return error.desc;
  return (error as Error)?.message ?? String(error);
}

/** QEMU's side of live migration: incoming process, migrate/query-migrate, NBD storage copy, TLS, cancel. */
export class QemuMigration implements MigrationCapability {
  private facts?: Promise<MigrationHostFacts>;

  constructor(private readonly host: QemuMigrationHost) {}

  cpuModel(config: DomainConfig): Promise<string> {
    return this.host.cpuModel(config);
  }

  hostFacts(): Promise<MigrationHostFacts> {
    this.facts ??= this.readHostFacts().catch((error: unknown) => {
      this.facts = undefined;
      throw error;
    });
    return this.facts;
  }

  async diskSizes(domain: DomainRecord): Promise<Record<string, number>> {
    const instance = this.host.live(domain);
    const nodes = await instance.qmp!.block.queryNamedBlockNodes();
    const sizes: Record<string, number> = {};
    for (const target of diskTargets(domain.config.disks)) {
      const node = nodes.find((entry) => entry['node-name'] === `fmt-${target}`);
      if (node) sizes[target] = node.image['virtual-size'];
    }
    return sizes;
  }

  async prepareIncoming(domain: DomainRecord, options: IncomingOptions): Promise<{ run: RunState; target: IncomingTarget }> {
    const targets = diskTargets(domain.config.disks);
    for (const [target, size] of Object.entries(options.copyDisks ?? {})) {
      const disk = domain.config.disks[targets.indexOf(target)];
      const path = disk && 'path' in disk.source ? disk.source.path : undefined;
      if (!disk || !path) throw new VirtError('INVALID_ARG', `no file disk ${target} to copy`);
      await execFileAsync('qemu-img', ['create', '-q', '-f', disk.format ?? 'qcow2', path, String(size)]).catch((error: unknown) => {
        throw new VirtError('OPERATION_FAILED', `could not create ${path} for the storage copy: ${(error as Error).message}`, { cause: error });
      });
    }
    const run = await this.host.spawn(domain, ['-incoming', 'defer']);
    const instance = this.host.live({ ...domain, runtime: run.runtime ?? undefined });
    const qmp = instance.qmp!;
    try {
      if (options.tlsDir) {
        await qmp.misc.objectAdd({ 'qom-type': 'tls-creds-x509', id: TLS_ID, dir: options.tlsDir, endpoint: 'server', 'verify-peer': true });
        await qmp.migration.migrateSetParameters({ 'tls-creds': TLS_ID });
      }
      if (options.postCopy) await qmp.migration.migrateSetCapabilities([{ capability: 'postcopy-ram', state: true }]);
      const port = await freeTcpPort(options.listenHost);
      const uri = `tcp:${bracketed(options.listenHost)}:${port}`;
      await qmp.migration.migrateIncoming(uri);
      const target: IncomingTarget = { uri };
      const copy = Object.keys(options.copyDisks ?? {});
      if (copy.length > 0) {
        const nbdPort = await freeTcpPort(options.listenHost);
        await qmp.block.nbdServerStart({
          addr: { type: 'inet', data: { host: options.listenHost, port: String(nbdPort) } },
          ...(options.tlsDir ? { 'tls-creds': TLS_ID } : {}),
        });
        const exports: Record<string, string> = {};
        for (const disk of copy) {
          await qmp.block.blockExportAdd({ type: 'nbd', id: `mig-export-${disk}`, 'node-name': `fmt-${disk}`, name: disk, writable: true });
          exports[disk] = disk;
        }
        target.nbd = { host: options.listenHost, port: nbdPort, exports };
      }
      return { run: { state: 'paused', reason: 'migration', ...(run.runtime ? { runtime: run.runtime } : {}) }, target };
    } catch (error) {
      await this.host.end(instance, 'destroyed').catch(() => undefined);
      throw new VirtError('OPERATION_FAILED', `preparing the incoming QEMU failed: ${qmpMessage(error)}`, { cause: error });
    }
  }

  async finishIncoming(domain: DomainRecord, resume: boolean): Promise<RunState> {
    const instance = this.host.live(domain);
    return this.host.busy(instance, async () => {
      const qmp = instance.qmp!;
      const deadline = Date.now() + 60_000;
      let postcopy = false;
      for (;;) {
        const info = await qmp.migration.queryMigrate();
        if (info.status === 'failed') throw new VirtError('OPERATION_FAILED', `incoming migration failed: ${info['error-desc'] ?? 'unknown error'}`);
        const { status } = await qmp.lifecycle.queryStatus();
        // post-copy: resume at once, the pages still missing are pulled on demand
        if (info.status === 'postcopy-active') postcopy = true;
        if (postcopy || (status !== 'inmigrate' && info.status === 'completed')) break;
        if (Date.now() > deadline) throw new VirtError('OPERATION_TIMEOUT', 'the incoming migration did not complete');
        await sleep(20);
      }
      if (!postcopy) await this.stopNbdServer(instance);
      const { status } = await qmp.lifecycle.queryStatus();
      if ((resume || postcopy) && status !== 'running') await qmp.lifecycle.cont();
      if (postcopy) return { state: 'running', reason: 'postcopy' };
      if (!resume && status === 'running') await qmp.lifecycle.stop();
      return resume ? { state: 'running', reason: 'migrated' } : { state: 'paused', reason: 'migration' };
    });
  }

  async abortIncoming(domain: DomainRecord): Promise<RunState> {
    let instance: QemuInstance;
    try {
      instance = this.host.live(domain);
    } catch {
      return { state: 'shutoff', reason: 'failed', runtime: null };
    }
    return this.host.end(instance, 'destroyed');
  }

  async migrateOut(domain: DomainRecord, options: OutgoingOptions): Promise<MigrationStatus> {
    const instance = this.host.live(domain);
    return this.host.busy(instance, async () => {
      const qmp = instance.qmp!;
      const mirrors = Object.keys(options.target.nbd?.exports ?? {});
      let status: MigrationStatus = {
        phase: mirrors.length > 0 ? 'copying-storage' : 'copying-ram',
        ramTransferredBytes: 0,
        ramRemainingBytes: domain.config.memory * 1024 * 1024,
        ramTotalBytes: domain.config.memory * 1024 * 1024,
        iteration: 0,
        dirtyPagesRate: 0,
        diskProcessedBytes: 0,
        diskTotalBytes: 0,
      };
      const cancelled = () => options.signal.aborted;
      try {
        if (options.tlsDir) {
          await qmp.misc.objectAdd({ 'qom-type': 'tls-creds-x509', id: TLS_ID, dir: options.tlsDir, endpoint: 'client', 'verify-peer': true });
        }
        await qmp.migration.migrateSetCapabilities([
          { capability: 'auto-converge', state: options.autoConverge },
          { capability: 'postcopy-ram', state: options.postCopy },
          // MIGRATION_PASS per memory pass (libvirt's MIGRATION_ITERATION event)
          { capability: 'events', state: true },
        ]);
        await qmp.migration.migrateSetParameters({
          // parameters outlive a migration in QEMU: an earlier attempt's throttle must not stay
          'downtime-limit': options.maxDowntimeMs ?? QEMU_DEFAULT_DOWNTIME_MS,
          'max-bandwidth': (options.bandwidthMiBs ?? QEMU_DEFAULT_BANDWIDTH_MIBS) * 1024 * 1024,
          'tls-creds': options.tlsDir ? TLS_ID : '',
          'tls-hostname': options.tlsDir ? (options.tlsHostname ?? '') : '',
        });
        const nbd = options.target.nbd;
        if (nbd) {
          for (const target of mirrors) {
            await qmp.block.blockdevAdd({
              driver: 'nbd',
              'node-name': nbdNode(target),
              server: { type: 'inet', host: nbd.host, port: String(nbd.port) },
              export: nbd.exports[target],
              ...(options.tlsDir ? { 'tls-creds': TLS_ID, ...(options.tlsHostname ? { 'tls-hostname': options.tlsHostname } : {}) } : {}),
            });
            await qmp.jobs.blockdevMirror({ 'job-id': mirrorJob(target), device: `fmt-${target}`, target: nbdNode(target), sync: 'full', 'auto-dismiss': false });
          }
          for (;;) {
            if (cancelled()) throw new VirtError('OPERATION_FAILED', 'migration cancelled');
            const jobs = (await qmp.jobs.queryBlockJobs()).filter((job) => job.device.startsWith('mig-mirror-'));
            const failed = jobs.find((job) => job.status === 'concluded' && !job.ready);
            if (failed) throw new VirtError('OPERATION_FAILED', `storage copy of ${failed.device} stopped`);
            status = { ...status, diskProcessedBytes: jobs.reduce((sum, job) => sum + job.offset, 0), diskTotalBytes: jobs.reduce((sum, job) => sum + job.len, 0) };
            options.onProgress(status);
            if (jobs.length === mirrors.length && jobs.every((job) => job.ready)) break;
            await sleep(POLL_MS);
          }
        }
        if (!options.live) await qmp.lifecycle.stop();
        await qmp.migration.migrate(options.target.uri);
        let postcopyStarted = false;
        let postcopyResumed = false;
        for (;;) {
          const info = await qmp.migration.queryMigrate();
          const jobs = mirrors.length > 0 ? await qmp.jobs.queryBlockJobs() : [];
          status = {
            ...status,
            phase: info.status === 'postcopy-active' ? 'post-copy' : info.status === 'completed' || info.status === 'device' ? 'finishing' : 'copying-ram',
            ...(info.ram
              ? {
                  ramTransferredBytes: info.ram.transferred,
                  ramRemainingBytes: info.ram.remaining,
                  ramTotalBytes: info.ram.total,
                  iteration: info.ram['dirty-sync-count'],
                  dirtyPagesRate: info.ram['dirty-pages-rate'],
                }
              : {}),
            ...(jobs.length > 0 ? { diskProcessedBytes: jobs.reduce((sum, job) => sum + job.offset, 0), diskTotalBytes: jobs.reduce((sum, job) => sum + job.len, 0) } : {}),
            ...(info.downtime !== undefined ? { downtimeMs: info.downtime } : {}),
            ...(info['total-time'] !== undefined ? { totalTimeMs: info['total-time'] } : {}),
          };
          options.onProgress(status);
          if (info.status === 'postcopy-active' && !postcopyResumed) {
            postcopyResumed = true;
            await options.onPostcopy?.();
          }
          if (info.status === 'completed') break;
          if (info.status === 'failed' || info.status === 'cancelled') {
            throw new VirtError('OPERATION_FAILED', `migration ${info.status}: ${info['error-desc'] ?? 'QEMU gave no reason'}`);
          }
          // in post-copy the destination already runs the guest: there is nothing to go back to
          if (cancelled() && !postcopyStarted) await qmp.migration.migrateCancel();
          // an idle guest converges within its first pass: switch as soon as RAM is flowing, not after it
          if (options.postCopy && !postcopyStarted && info.status === 'active' && (info.ram?.transferred ?? 0) > 0) {
            await qmp.migration.migrateStartPostcopy();
            postcopyStarted = true;
          }
          await sleep(POLL_MS);
        }
        // the guest is paused here and everything is sent: the mirrors are in sync, finish them without pivoting
        for (const target of mirrors) await this.endMirror(instance, target, false);
        return status;
      } catch (error) {
        await this.cleanupOutgoing(instance);
        throw error instanceof VirtError ? error : new VirtError('OPERATION_FAILED', `migration failed: ${qmpMessage(error)}`, { cause: error });
      }
    });
  }

  async confirmOutgoing(domain: DomainRecord): Promise<RunState> {
    return this.host.end(this.host.live(domain), 'migrated');
  }

  async recoverOutgoing(domain: DomainRecord, resume: boolean): Promise<RunState> {
    const instance = this.host.live(domain);
    return this.host.busy(instance, async () => {
      const qmp = instance.qmp!;
      const info = await qmp.migration.queryMigrate().catch((): QmpMigrationInfo => ({}));
      if (info.status === 'active' || info.status === 'setup' || info.status === 'pre-switchover' || info.status === 'device') {
        await qmp.migration.migrateCancel().catch(() => undefined);
        const deadline = Date.now() + 10_000;
        while (Date.now() < deadline) {
          const now = await qmp.migration.queryMigrate().catch((): QmpMigrationInfo => ({}));
          if (now.status !== 'cancelling' && now.status !== 'active') break;
          await sleep(20);
        }
      }
      await this.cleanupOutgoing(instance);
      const { status } = await qmp.lifecycle.queryStatus();
      if (resume && status !== 'running') {
        await qmp.lifecycle.cont();
        return { state: 'running', reason: 'migration_canceled' };
      }
      return status === 'running' ? { state: 'running', reason: 'migration_canceled' } : { state: 'paused', reason: 'user' };
    });
  }

  /** Mirror jobs, NBD client nodes and the TLS object of an outgoing migration, removed whatever state they are in. */
  private async cleanupOutgoing(instance: QemuInstance): Promise<void> {
    const qmp = instance.qmp!;
    const jobs = await qmp.jobs.queryBlockJobs().catch((): QmpBlockJobInfo[] => []);
    for (const job of jobs.filter((entry) => entry.device.startsWith('mig-mirror-'))) await this.endMirror(instance, job.device.slice('mig-mirror-'.length), true);
    const nodes = await qmp.block.queryNamedBlockNodes().catch(() => []);
    for (const name of nodes.map((entry) => entry['node-name'] ?? '').filter((entry) => entry.startsWith('mig-nbd-'))) {
      await qmp.block.blockdevDel(name).catch(() => undefined);
    }
    await qmp.misc.objectDel(TLS_ID).catch(() => undefined);
  }

  /** block-job-cancel on a ready mirror completes it with the target in sync (no pivot); then dismiss and drop the NBD node. */
  private async endMirror(instance: QemuInstance, target: string, force: boolean): Promise<void> {
    const qmp = instance.qmp!;
    const id = mirrorJob(target);
    await qmp.jobs.blockJobCancel(id, force).catch(() => undefined);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const job = (await qmp.jobs.queryBlockJobs()).find((entry) => entry.device === id);
      if (!job) break;
      if (job.status === 'concluded') {
        await qmp.jobs.jobDismiss(id).catch(() => undefined);
        break;
      }
      await sleep(20);
    }
    await qmp.block.blockdevDel(nbdNode(target)).catch(() => undefined);
  }

  private async stopNbdServer(instance: QemuInstance): Promise<void> {
    const qmp = instance.qmp!;
    const exports = await qmp.block.queryBlockExports().catch(() => []);
    for (const entry of exports.filter((item) => item.id.startsWith('mig-export-'))) {
      await qmp.block.blockExportDel(entry.id).catch(() => undefined);
    }
    await qmp.block.nbdServerStop().catch(() => undefined);
  }

  private async readHostFacts(): Promise<MigrationHostFacts> {
    const binary = this.host.binary();
    if (!binary) throw new VirtError('OPERATION_UNSUPPORTED', 'qemu-system-x86_64 is not installed');
    const [machines, cpus] = await Promise.all([
      execFileAsync(binary, ['-machine', 'help'], { timeout: 10_000 }),
      execFileAsync(binary, ['-cpu', 'help'], { timeout: 10_000 }),
    ]);
    const machineNames = machines.stdout
      .split('\n')
      .slice(1)
      .map((line) => line.trim().split(/\s+/)[0] ?? '')
      .filter(Boolean);
    const cpuNames = cpus.stdout
      .split('\n')
      .map((line) => /^x86\s+(\S+)/.exec(line.trim())?.[1])
      .filter((name): name is string => name !== undefined);
    return { machines: machineNames, cpuModels: [...new Set([...cpuNames, 'host', 'max'])] };
  }
}

/** Whether a path exists (the destination's shared-storage check). */
export async function pathExists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

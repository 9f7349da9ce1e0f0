import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { NatsConnection } from '@nats-io/transport-node';
import { VirtClient } from '@virtbus/client';
import {
  MIGRATION_CARRIED_MAX_BYTES,
  VirtError,
  type AsyncOperation,
  type LifecycleEvent,
  type DomainConfig,
  type MigrationAcceptRequest,
  type MigrationProgress,
  type MigrationRequest,
  type MigrationTicket,
  type OperationRequest,
  type OperationResponse,
  type PeerMigrationAbort,
  type PeerMigrationFile,
  type PeerMigrationFinish,
  type PeerMigrationOperations,
  type PeerMigrationPrepare,
  type PeerMigrationTarget,
  type StorageVolumesPost,
} from '@virtbus/api-contract';
import { diskTargets, nvramPath, writeJsonAtomic, type DomainRecord, type NetworkResolver, type HypervisorDriver, type MigrationCapability, type MigrationStatus } from '@virtbus/drivers';
import type { Logger } from 'pino';
import type { DomainManager } from '../domains/manager.js';
import type { OperationHandlers } from '../service.js';
import type { OperationHandle, OperationManager } from '../storage/operations.js';
import { checkCompatibility } from './compatibility.js';
import { resolveConfig, type VolumeResolver } from '../domains/volumes.js';
import { readHostCpu } from '../node-info.js';
import { assertMigrationTls, wantsTls } from './tls-policy.js';
import { SnapshotStore } from '../snapshots/store.js';
import { StateDir } from '../state-dir.js';

type PeerVerb = keyof typeof PeerMigrationOperations;
const PEER_TIMEOUT_MS = 60_000;
/** How long a ticket from migration.accept stays usable: the source uses it within seconds. */
const TICKET_TTL_MS = 120_000;
/** Outstanding tickets per destination; more means someone is asking without migrating. */
const MAX_TICKETS = 256;
const ACTIVE = new Set(['running', 'paused', 'blocked']);

export interface MigrationSettings {
  /** Address incoming migrations (and NBD storage copies) listen on. */
  listenHost: string;
  /** Directory with QEMU's x509 file names (ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem, client-key.pem). */
  tlsDir?: string;
}

export interface MigrationManagerOptions {
  node: string;
  nc: NatsConnection;
  stateDir: string;
  domains: DomainManager;
  operations: OperationManager;
  logger: Logger;
  settings: MigrationSettings;
  /** The node's virtual networks, which network/bridge NICs must find on the destination. */
  networks?: NetworkResolver;
  /** The node's storage pools: disks that are pool volumes are checked, created for a storage copy and resolved there. */
  storage?: VolumeResolver & { createVolume(pool: string, post: StorageVolumesPost): Promise<unknown> };
  /** Lifecycle events of this node: an incoming process that dies (the source went away) is cleaned up at once. */
  onLifecycle?: (listener: (event: LifecycleEvent) => void) => void;
}

/** What each side writes before it acts, so a restarted agent can put things back in a clean state. */
interface Journal {
  migrationId: string;
  role: 'source' | 'destination';
  uuid: string;
  peer: string;
  /** source: whether the guest ran before (it is resumed on failure); `finishing` once the destination was told to resume. */
  wasRunning?: boolean;
  phase?: 'migrating' | 'finishing';
  /** destination: whether this migration created the definition, and the disk files it created. */
  createdDefinition?: boolean;
  createdFiles?: string[];
  /** source: the destination's ticket (finish and abort need it); destination: its sha256. */
  ticket?: string;
  ticketHash?: string;
}

interface PendingTicket {
  uuid: string;
  source: string;
  expiresAt: number;
}

const hashTicket = (ticket: string) => createHash('sha256').update(ticket).digest('hex');
const refused = (node: string, what: string) => new VirtError('FORBIDDEN', `node ${node} refuses ${what}: no valid migration ticket (migration.accept on this node issues one)`);

/** What the destination logs about a peer call: who claims to send it, for which migration and domain. */
function peerCallFields(request: OperationRequest<PeerVerb>): Record<string, unknown> {
  const config = 'config' in request ? request.config : undefined;
  return {
    source: 'source' in request ? request.source : undefined,
    migrationId: request.migrationId,
    uuid: 'uuid' in request ? request.uuid : config?.uuid,
    domain: config?.name,
    ticket: request.ticket !== undefined,
  };
}

/** An agent may not read other nodes' registrations, so a silent peer is unreachable, never NO_NODE. */
const unreachable = (node: string) => (error: Error) => new VirtError('AGENT_UNREACHABLE', `node ${node} has no agent answering migrations`, { cause: error });

function migrationOf(driver: HypervisorDriver): MigrationCapability {
  if (!driver.migration) throw new VirtError('OPERATION_UNSUPPORTED', `the ${driver.name} driver cannot migrate running domains (use offline)`);
  return driver.migration;
}

function toProgress(status: MigrationStatus): MigrationProgress {
  return {
    phase: status.phase,
    ramTransferredBytes: status.ramTransferredBytes,
    ramRemainingBytes: status.ramRemainingBytes,
    ramTotalBytes: status.ramTotalBytes,
    iteration: status.iteration,
    dirtyPagesRate: status.dirtyPagesRate,
    diskProcessedBytes: status.diskProcessedBytes,
    diskTotalBytes: status.diskTotalBytes,
    ...(status.downtimeMs !== undefined ? { downtimeMs: status.downtimeMs } : {}),
    ...(status.totalTimeMs !== undefined ? { totalTimeMs: status.totalTimeMs } : {}),
  };
}

/** libvirt's job statistics names (VIR_DOMAIN_JOB_*) of the migration figures, for JOB_COMPLETED. */
const JOB_FIELDS = {
  ramTransferredBytes: 'memory_processed',
  ramTotalBytes: 'memory_total',
  diskProcessedBytes: 'disk_processed',
  diskTotalBytes: 'disk_total',
  downtimeMs: 'downtime',
  totalTimeMs: 'time_elapsed',
} as const;

/** The disk paths a storage copy writes on the destination (`diskPaths` overrides by target). */
function destinationConfig(config: DomainConfig, request: MigrationRequest, targets: readonly string[]): DomainConfig {
  const paths = request.diskPaths ?? {};
  const pools = request.poolMap ?? {};
  return {
    ...config,
    disks: config.disks.map((disk, index) => {
      if ('pool' in disk.source) return { ...disk, source: { ...disk.source, pool: pools[disk.source.pool] ?? disk.source.pool } };
      const path = paths[targets[index] ?? ''];
      return path ? { ...disk, source: { path } } : disk;
    }),
  };
}

/**
 * Node-to-node migration: the source agent drives (check → prepare → stream → finish → confirm), the destination
 * agent answers on its peer subjects. Each side journals its part so an agent restart mid-migration ends cleanly.
 */
export class MigrationManager {
  private readonly active = new Set<string>();
  /** Destination side: migration id by domain uuid while an incoming process waits for its finish. */
  private readonly incoming = new Map<string, string>();
  /** Destination side: tickets issued by migration.accept and not yet used, by ticket. */
  private readonly tickets = new Map<string, PendingTicket>();
  private readonly dir: string;
  private readonly client: VirtClient;
  private readonly snapshots: SnapshotStore;

  constructor(private readonly options: MigrationManagerOptions) {
    this.dir = join(options.stateDir, 'migrations');
    this.snapshots = new SnapshotStore(options.stateDir);
    this.client = new VirtClient(options.nc, PEER_TIMEOUT_MS);
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    this.options.onLifecycle?.((event) => {
      const migrationId = this.incoming.get(event.uuid);
      if (event.type !== 'STOPPED' || !migrationId) return;
      // the incoming QEMU exits by itself when the stream breaks (source killed): drop what was prepared
      this.incoming.delete(event.uuid);
      void this.readJournal(migrationId).then((journal) => journal && this.dropIncoming(journal));
    });
    await this.recover();
  }

  /** The destination's side of the peer verbs (served with every other operation), each logged with who claims to send it. */
  peerHandlers(): Pick<OperationHandlers, PeerVerb> {
    const { node } = this.options;
    return {
      'migration.check': (prepare) =>
        this.logged('migration.check', prepare, () => {
          if (!this.ticketValid(prepare, false)) throw refused(node, `to check domain ${prepare.config.name}`);
          return this.check(prepare);
        }),
      'migration.prepare': (prepare) =>
        this.logged('migration.prepare', prepare, () => {
          if (!this.ticketValid(prepare, true)) throw refused(node, `to prepare domain ${prepare.config.name}`);
          return this.prepare(prepare);
        }),
      'migration.finish': (request) => this.logged('migration.finish', request, () => this.finish(request)),
      'migration.abort': (request) => this.logged('migration.abort', request, async () => (await this.abort(request), {})),
    };
  }

  private async logged<T>(verb: PeerVerb, request: OperationRequest<PeerVerb>, run: () => Promise<T>): Promise<T> {
    // logged as before the table served them (verb: check, prepare, finish, abort)
    const about = { verb: verb.slice('migration.'.length), ...peerCallFields(request) };
    try {
      const result = await run();
      this.options.logger.info(about, 'peer migration request accepted');
      return result;
    } catch (failure) {
      if (VirtError.is(failure)) this.options.logger.warn({ ...about, code: failure.code, reason: failure.message }, 'peer migration request refused');
      else this.options.logger.error({ err: failure, ...about }, 'peer migration request failed');
      throw failure;
    }
  }

  /** Destination side: a one-time ticket for migrating `uuid` here from `source` (the caller is authorised for both nodes). */
  accept(request: MigrationAcceptRequest): MigrationTicket {
    const { node, logger } = this.options;
    if (request.source === node) throw new VirtError('INVALID_ARG', `a migration from node ${node} to itself needs no ticket`);
    const now = Date.now();
    for (const [ticket, pending] of this.tickets) if (pending.expiresAt <= now) this.tickets.delete(ticket);
    if (this.tickets.size >= MAX_TICKETS) throw new VirtError('OPERATION_INVALID', `node ${node} has ${MAX_TICKETS} unused migration tickets; try again later`);
    const ticket = randomBytes(32).toString('base64url');
    const expiresAt = now + TICKET_TTL_MS;
    this.tickets.set(ticket, { uuid: request.uuid, source: request.source, expiresAt });
    logger.info({ uuid: request.uuid, source: request.source }, 'migration ticket issued');
    return { ticket, expiresAt: new Date(expiresAt).toISOString() };
  }

  /** Whether the ticket allows this prepare; `consume` spends it (prepare), check only looks. */
  private ticketValid(prepare: PeerMigrationPrepare, consume: boolean): boolean {
    const pending = prepare.ticket === undefined ? undefined : this.tickets.get(prepare.ticket);
    if (!pending || pending.expiresAt <= Date.now() || pending.uuid !== prepare.config.uuid || pending.source !== prepare.source) return false;
    if (consume) this.tickets.delete(prepare.ticket as string);
    return true;
  }

  /** Finish and abort act only on a migration this node prepared, for the holder of its ticket. */
  private async incomingJournal(request: PeerMigrationAbort): Promise<Journal> {
    const journal = await this.readJournal(request.migrationId);
    if (!journal || journal.role !== 'destination' || journal.uuid !== request.uuid || !request.ticket || journal.ticketHash !== hashTicket(request.ticket)) {
      throw refused(this.options.node, `migration ${request.migrationId}`);
    }
    return journal;
  }

  /** Starts migrating a domain to `request.destination`; checks compatibility first so a refusal is a plain error. */
  async migrate(id: string, request: MigrationRequest, ticket?: string): Promise<AsyncOperation> {
    const { domains, node } = this.options;
    const record = domains.record(id);
    const { config } = record;
    if (request.destination === node) throw new VirtError('INVALID_ARG', `domain ${config.name} is already on node ${node}`);
    // every definition here is persistent; a transient copy on the destination does not exist yet
    if (request.persistDestination === false) throw new VirtError('OPERATION_UNSUPPORTED', 'persistDestination false (a transient domain on the destination) is not supported yet');
    if (this.active.has(config.uuid)) throw new VirtError('OPERATION_INVALID', `domain ${config.name} is already migrating`);
    const offline = request.offline ?? false;
    const driver = domains.driverFor(config);
    let diskSizes: Record<string, number> = {};
    let cpu: PeerMigrationPrepare['cpu'];
    if (!offline) {
      if (!ACTIVE.has(record.state)) throw new VirtError('OPERATION_INVALID', `domain ${config.name} is ${record.state}: only a running or paused domain migrates live (use offline)`);
      const migration = migrationOf(driver);
      if ((request.copyStorage ?? 'none') === 'all') diskSizes = await migration.diskSizes(record);
      if (migration.cpuModel) cpu = { model: await migration.cpuModel(config), host: await readHostCpu() };
    } else if (request.undefineSource && ACTIVE.has(record.state)) {
      throw new VirtError('OPERATION_INVALID', `domain ${config.name} is ${record.state}: an offline migration cannot undefine an active source`);
    }
    const { listenHost, tlsDir } = this.options.settings;
    // TLS by default once this node's migration address is off loopback; the destination may ask for it too (check's answer)
    const ownTls = offline ? request.tls : (request.tls ?? (wantsTls(undefined, listenHost) ? true : undefined));
    if (!offline) assertMigrationTls({ node, tls: ownTls ?? false, listenHost, ...(tlsDir ? { tlsDir } : {}), ...(request.tls !== undefined ? { requested: request.tls } : {}) });
    const targets = diskTargets(config.disks);
    const copying = (request.copyStorage ?? 'none') === 'all';
    const snapshots = await this.snapshots.load(config.uuid);
    // an NBD copy carries the guest-visible data only: internal snapshots and external overlays stay behind
    if (copying && snapshots.snapshots.length > 0) {
      throw new VirtError('MIGRATION_INCOMPATIBLE', `domain ${config.name} has ${snapshots.snapshots.length} snapshot(s), which a storage copy cannot carry: migrate over shared storage or delete them`);
    }
    const files = await this.carriedFiles(config, request, copying);
    let prepare: PeerMigrationPrepare = {
      migrationId: '00000000-0000-4000-8000-000000000000',
      source: node,
      config: copying ? destinationConfig(config, request, targets) : config,
      options: ownTls === undefined ? request : { ...request, tls: ownTls },
      diskSizes,
      ...(ticket !== undefined ? { ticket } : {}),
      ...(cpu ? { cpu } : {}),
      ...(snapshots.snapshots.length > 0 ? { snapshots } : {}),
      ...(files.length > 0 ? { files } : {}),
    };
    const checked = await this.peer(request.destination, 'migration.check', prepare);
    if (!offline && ownTls === undefined && checked.tls) {
      assertMigrationTls({ node, tls: true, listenHost, ...(tlsDir ? { tlsDir } : {}), because: `node ${request.destination} takes migrations off loopback and asks for TLS (tls: false in the request forces plaintext)` });
      prepare = { ...prepare, options: { ...prepare.options, tls: true } };
    }
    this.active.add(config.uuid);
    const total = diskSizes ? Object.values(diskSizes).reduce((sum, size) => sum + size, 0) + config.memory * 1024 * 1024 : 0;
    return this.options.operations.run(`migrate ${config.name} to ${request.destination}`, { domain: config.uuid, destination: request.destination }, offline ? 0 : total, (handle) =>
      this.runSource(handle, record, { ...prepare, migrationId: handle.id }).finally(() => this.active.delete(config.uuid)),
    );
  }

  private async runSource(handle: OperationHandle, record: DomainRecord, prepare: PeerMigrationPrepare): Promise<void> {
    const { domains, logger } = this.options;
    const request = prepare.options;
    const uuid = record.config.uuid;
    const destination = request.destination;
    const report = (status: Partial<MigrationProgress> & Pick<MigrationProgress, 'phase'>) =>
      handle.progress(0, undefined, { ramTransferredBytes: 0, ramRemainingBytes: 0, ramTotalBytes: 0, iteration: 0, dirtyPagesRate: 0, diskProcessedBytes: 0, diskTotalBytes: 0, ...status });
    if (request.offline) {
      report({ phase: 'preparing' });
      await this.peer(destination, 'migration.prepare', prepare);
      if (request.undefineSource) await domains.undefine(uuid);
      report({ phase: 'done' });
      return;
    }
    const wasRunning = record.state === 'running' || record.state === 'blocked';
    const resume = wasRunning && !(request.paused ?? false);
    const ticket = prepare.ticket;
    const journal: Journal = { migrationId: prepare.migrationId, role: 'source', uuid, peer: destination, wasRunning, phase: 'migrating', ...(ticket ? { ticket } : {}) };
    await this.writeJournal(journal);
    let prepared = false;
    let finished = false;
    try {
      report({ phase: 'preparing' });
      const target = await this.peer(destination, 'migration.prepare', prepare);
      prepared = true;
      await domains.runJob(uuid, 'migrate', async (current, driver, apply) => {
        const migration = migrationOf(driver);
        const status = await migration.migrateOut(current(), {
          target,
          live: request.live ?? true,
          paused: !resume,
          ...(request.maxDowntimeMs !== undefined ? { maxDowntimeMs: request.maxDowntimeMs } : {}),
          ...(request.bandwidthMiBs !== undefined ? { bandwidthMiBs: request.bandwidthMiBs } : {}),
          autoConverge: request.autoConverge ?? false,
          postCopy: request.postCopy ?? false,
          ...(request.tls && this.options.settings.tlsDir ? { tlsDir: this.options.settings.tlsDir } : {}),
          signal: handle.signal,
          onPostcopy: async () => {
            // the destination owns the guest from here on: it must run now, and a failure can no longer fall back to the source
            await this.writeJournal({ ...journal, phase: 'finishing' });
            await this.peer(destination, 'migration.finish', { migrationId: prepare.migrationId, uuid, resume: true, ...(ticket ? { ticket } : {}) });
            finished = true;
          },
          onProgress: (progress) =>
            handle.progress(progress.ramTransferredBytes + progress.diskProcessedBytes, progress.ramTotalBytes + progress.diskTotalBytes, toProgress(progress)),
        });
        handle.progress(status.ramTransferredBytes + status.diskProcessedBytes, undefined, toProgress({ ...status, phase: 'finishing' }));
        if (!finished) {
          await this.writeJournal({ ...journal, phase: 'finishing' });
          try {
            await this.peer(destination, 'migration.finish', { migrationId: prepare.migrationId, uuid, resume, ...(ticket ? { ticket } : {}) });
          } catch (error) {
            // the destination did not take over: the guest continues here
            await apply(await migration.recoverOutgoing(current(), wasRunning));
            throw error;
          }
          finished = true;
        }
        await apply(await migration.confirmOutgoing(current()));
        handle.progress(status.ramTotalBytes + status.diskTotalBytes, undefined, { ...toProgress(status), phase: 'done' });
        // libvirt's JOB_COMPLETED with its typed-parameter names (VIR_DOMAIN_JOB_*)
        const figures = toProgress(status);
        const params = Object.entries(JOB_FIELDS).flatMap(([from, to]) => (figures[from as keyof typeof JOB_FIELDS] === undefined ? [] : [[to, figures[from as keyof typeof JOB_FIELDS]!]]));
        await domains.emitDomainEvent(uuid, 'JOB_COMPLETED', { params: { operation: 'migration-out', ...Object.fromEntries(params) } });
      });
      await this.removeJournal(journal.migrationId);
      if (request.undefineSource) await domains.undefine(uuid);
    } catch (error) {
      if (!finished) {
        if (prepared) await this.peer(destination, 'migration.abort', { migrationId: prepare.migrationId, uuid, ...(ticket ? { ticket } : {}) }).catch((failure: unknown) => logger.warn({ err: failure }, 'destination abort failed'));
        await domains
          .runJob(uuid, 'migrate-recover', async (current, driver, apply) => {
            if (ACTIVE.has(current().state)) await apply(await migrationOf(driver).recoverOutgoing(current(), wasRunning));
          })
          .catch((failure: unknown) => logger.warn({ err: failure, uuid }, 'could not resume the source after a failed migration'));
      }
      await this.removeJournal(journal.migrationId);
      throw error;
    }
  }

  /** Whether this node can take the domain; answers whether the stream is to be encrypted. */
  private async check(prepare: PeerMigrationPrepare): Promise<{ tls: boolean }> {
    const { domains, node } = this.options;
    try {
      domains.record(prepare.config.uuid);
      throw new VirtError('OPERATION_INVALID', `domain ${prepare.config.name} is already defined on node ${node}`);
    } catch (error) {
      if (!VirtError.is(error, 'NO_DOMAIN')) throw error;
    }
    try {
      domains.record(prepare.config.name);
      throw new VirtError('OPERATION_INVALID', `another domain named ${prepare.config.name} exists on node ${node}`);
    } catch (error) {
      if (!VirtError.is(error, 'NO_DOMAIN')) throw error;
    }
    await checkCompatibility({
      node,
      domains,
      prepare,
      hasTls: this.options.settings.tlsDir !== undefined,
      ...(this.options.networks ? { networks: this.options.networks } : {}),
      ...(this.options.storage ? { volumes: this.options.storage } : {}),
    });
    if (prepare.options.offline) return { tls: false };
    const { listenHost, tlsDir } = this.options.settings;
    const tls = wantsTls(prepare.options.tls, listenHost);
    assertMigrationTls({ node, tls, listenHost, ...(tlsDir ? { tlsDir } : {}), ...(prepare.options.tls !== undefined ? { requested: prepare.options.tls } : {}) });
    return { tls };
  }

  private async prepare(prepare: PeerMigrationPrepare): Promise<PeerMigrationTarget> {
    const { domains, logger } = this.options;
    await this.check(prepare);
    const { config, options } = prepare;
    await domains.defineConfig(config);
    // what came inside the message is written before the guest starts; it goes with the other files on failure
    const createdFiles = await this.writeCarried(prepare).catch(async (error: unknown) => {
      await this.dropIncoming({ migrationId: prepare.migrationId, role: 'destination', uuid: config.uuid, peer: prepare.source, createdDefinition: true });
      throw error;
    });
    if (options.offline) return { uri: '' };
    const copy = (options.copyStorage ?? 'none') === 'all';
    const targets = diskTargets(config.disks);
    const copyDisks = copy ? Object.fromEntries(targets.flatMap((target, index) => (config.disks[index]?.readonly ? [] : prepare.diskSizes[target] !== undefined ? [[target, prepare.diskSizes[target]!]] : []))) : {};
    // a copied pool volume is made anew in its pool (the copy then writes it); it goes with the other files on failure
    for (const target of Object.keys(copyDisks)) {
      const disk = config.disks[targets.indexOf(target)];
      if (disk && 'pool' in disk.source && this.options.storage) {
        await this.options.storage.createVolume(disk.source.pool, { name: disk.source.volume, capacity: copyDisks[target]!, ...(disk.format ? { format: disk.format } : {}) });
        createdFiles.push((await this.options.storage.resolveVolume(disk.source.pool, disk.source.volume)).path);
      } else createdFiles.push(disk && 'path' in disk.source ? disk.source.path : '');
    }
    const journal: Journal = {
      migrationId: prepare.migrationId,
      role: 'destination',
      uuid: config.uuid,
      peer: prepare.source,
      createdDefinition: true,
      createdFiles,
      ticketHash: hashTicket(prepare.ticket as string),
    };
    await this.writeJournal(journal);
    try {
      return await domains.runJob(config.uuid, 'migrate-prepare', async (current, driver, apply) => {
        const { run, target } = await migrationOf(driver).prepareIncoming({ ...current(), config: await resolveConfig(current().config, this.options.storage) }, {
          listenHost: this.options.settings.listenHost,
          ...(wantsTls(options.tls, this.options.settings.listenHost) && this.options.settings.tlsDir ? { tlsDir: this.options.settings.tlsDir } : {}),
          ...(copy ? { copyDisks } : {}),
          postCopy: options.postCopy ?? false,
        });
        await apply(run);
        this.incoming.set(config.uuid, prepare.migrationId);
        return target;
      });
    } catch (error) {
      logger.warn({ err: error, domain: config.name }, 'incoming migration could not be prepared');
      await this.dropIncoming(journal);
      throw error;
    }
  }

  private async finish(request: PeerMigrationFinish): Promise<Record<string, never>> {
    await this.incomingJournal(request);
    this.incoming.delete(request.uuid);
    await this.options.domains.runJob(request.uuid, 'migrate-finish', async (current, driver, apply) => {
      await apply(await migrationOf(driver).finishIncoming(current(), request.resume));
    });
    await this.removeJournal(request.migrationId);
    return {};
  }

  private async abort(request: PeerMigrationAbort): Promise<void> {
    const journal = await this.readJournal(request.migrationId);
    // nothing prepared (or already dropped): nothing to abort
    if (!journal) return;
    await this.dropIncoming(await this.incomingJournal(request));
  }

  /** Kills the incoming process, drops the definition and the disk files this migration created. */
  private async dropIncoming(journal: Journal): Promise<void> {
    const { domains, logger } = this.options;
    this.incoming.delete(journal.uuid);
    try {
      await domains.runJob(journal.uuid, 'migrate-abort', async (current, driver, apply) => {
        if (ACTIVE.has(current().state) && driver.migration) await apply(await driver.migration.abortIncoming(current()));
      });
      if (journal.createdDefinition) await domains.undefine(journal.uuid);
    } catch (error) {
      if (!VirtError.is(error, 'NO_DOMAIN')) logger.warn({ err: error, uuid: journal.uuid }, 'could not drop the incoming domain');
    }
    for (const file of journal.createdFiles ?? []) if (file) await rm(file, { force: true });
    await this.removeJournal(journal.migrationId);
  }

  /** After a restart: a destination drops what it prepared; a source resumes its guest (or confirms if B took over). */
  private async recover(): Promise<void> {
    const { logger } = this.options;
    for (const file of await readdir(this.dir)) {
      if (!file.endsWith('.json')) continue;
      const journal = await this.readJournal(file.slice(0, -5));
      if (!journal) continue;
      logger.warn({ migration: journal.migrationId, role: journal.role, uuid: journal.uuid }, 'ending a migration interrupted by an agent restart');
      try {
        if (journal.role === 'destination') {
          await this.dropIncoming(journal);
          continue;
        }
        const takenOver = journal.phase === 'finishing' && (await this.destinationRuns(journal));
        if (!takenOver) {
          await this.peer(journal.peer, 'migration.abort', { migrationId: journal.migrationId, uuid: journal.uuid, ...(journal.ticket ? { ticket: journal.ticket } : {}) }).catch(() => undefined);
        }
        await this.options.domains.runJob(journal.uuid, 'migrate-recover', async (current, driver, apply) => {
          if (!ACTIVE.has(current().state)) return;
          const migration = migrationOf(driver);
          await apply(takenOver ? await migration.confirmOutgoing(current()) : await migration.recoverOutgoing(current(), journal.wasRunning ?? true));
        });
      } catch (error) {
        logger.error({ err: error, migration: journal.migrationId }, 'could not end an interrupted migration');
      }
      await this.removeJournal(journal.migrationId);
    }
  }

  /**
   * Small files that travel inside prepare: the EFI NVRAM (QEMU migrates the flash contents live, but not offline) and,
   * for a storage copy, the read-only pool volumes QEMU cannot mirror (the cloud-init seed); larger ones must exist there.
   */
  private async carriedFiles(config: DomainConfig, request: MigrationRequest, copying: boolean): Promise<PeerMigrationFile[]> {
    const files: { file: Omit<PeerMigrationFile, 'gzipBase64'>; path: string }[] = [];
    if (config.os.firmware === 'efi') files.push({ file: { kind: 'nvram' }, path: nvramPath(StateDir.nvram(this.options.stateDir), config.uuid) });
    if (copying && this.options.storage) {
      for (const disk of config.disks) {
        if (!disk.readonly || !('pool' in disk.source)) continue;
        const { pool, volume } = disk.source;
        files.push({ file: { kind: 'volume', pool: request.poolMap?.[pool] ?? pool, volume }, path: (await this.options.storage.resolveVolume(pool, volume)).path });
      }
    }
    let total = 0;
    const carried: PeerMigrationFile[] = [];
    for (const { file, path } of files) {
      const content = await readFile(path).catch((error: unknown) => {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT' && file.kind === 'nvram') return undefined;
        throw error;
      });
      if (!content) continue;
      const gzip = gzipSync(content);
      total += gzip.length;
      if (total > MIGRATION_CARRIED_MAX_BYTES) {
        throw new VirtError('MIGRATION_INCOMPATIBLE', `${file.volume ?? 'the NVRAM'} of ${config.name} is too large to travel with the migration (${MIGRATION_CARRIED_MAX_BYTES} bytes compressed in all): make it exist on the destination`);
      }
      carried.push({ ...file, gzipBase64: gzip.toString('base64') });
    }
    return carried;
  }

  /** Destination side: writes the carried files and the snapshot metadata; answers the paths made (removed on failure). */
  private async writeCarried(prepare: PeerMigrationPrepare): Promise<string[]> {
    const { uuid } = prepare.config;
    const created: string[] = [];
    for (const file of prepare.files ?? []) {
      const content = gunzipSync(Buffer.from(file.gzipBase64, 'base64'), { maxOutputLength: 64 * 1024 * 1024 });
      let path: string;
      if (file.kind === 'nvram') path = nvramPath(StateDir.nvram(this.options.stateDir), uuid);
      else {
        if (!file.pool || !file.volume || !this.options.storage) throw new VirtError('INVALID_ARG', 'a carried volume needs a pool and a volume on a node with storage pools');
        await this.options.storage.createVolume(file.pool, { name: file.volume, capacity: content.length, format: 'raw' });
        path = (await this.options.storage.resolveVolume(file.pool, file.volume)).path;
      }
      created.push(path);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, content, { mode: 0o600 });
    }
    if (prepare.snapshots) {
      await this.snapshots.init();
      await this.snapshots.save(uuid, prepare.snapshots);
      created.push(this.snapshots.path(uuid));
    }
    return created;
  }

  /** Whether the destination already runs the domain (it finished before the source could confirm). */
  private async destinationRuns(journal: Journal): Promise<boolean> {
    try {
      const domain = await this.client.call(journal.peer, 'domain.get', { id: journal.uuid }, { timeoutMs: 5_000, noResponders: unreachable(journal.peer) });
      return domain.state === 'running';
    } catch {
      return false;
    }
  }

  private peer<N extends PeerVerb>(destination: string, verb: N, body: OperationRequest<N>): Promise<OperationResponse<N>> {
    return this.client.call(destination, verb, body, { noResponders: unreachable(destination) });
  }

  private writeJournal(journal: Journal): Promise<void> {
    return writeJsonAtomic(join(this.dir, `${journal.migrationId}.json`), journal);
  }

  private async readJournal(id: string): Promise<Journal | undefined> {
    if (!/^[0-9a-f-]{36}$/i.test(id)) return undefined;
    try {
      return JSON.parse(await readFile(join(this.dir, `${id}.json`), 'utf8')) as Journal;
    } catch {
      return undefined;
    }
  }

  private removeJournal(id: string): Promise<void> {
    return rm(join(this.dir, `${id}.json`), { force: true });
  }
}

import { randomUUID } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import {
  VirtError,
  type HostInterface,
  type HostInterfaceChange,
  type HostInterfaceList,
  type HostInterfaceTransaction,
} from '@virtbus/api-contract';
import { applyChange, checkChange, listHostInterfaces, restoreSnapshot, snapshotOf, writeJsonAtomic, type InterfaceSnapshot } from '@virtbus/drivers';
import type { Logger } from 'pino';
import { StateDir } from '../state-dir.js';

export const DEFAULT_TRANSACTION_TIMEOUT_S = 600;

/** The open transaction as persisted: enough to roll back after an agent restart. */
interface StoredTransaction extends HostInterfaceTransaction {
  snapshot: InterfaceSnapshot[];
  /** Links the transaction created (written before each create, so a crash in between still rolls them back). */
  created: string[];
}

export interface InterfaceManagerOptions {
  stateDir: string;
  /** Network namespace the node's interfaces live in; the agent's own when undefined. */
  netns: string | undefined;
  /** Configuration (begin/commit/rollback/configure) is refused unless on; reads always work. */
  configurable: boolean;
  logger: Logger;
}

/** Host interface configuration with libvirt's iface-begin/commit/rollback, one open transaction per node. */
export class InterfaceManager {
  private transaction: StoredTransaction | undefined;
  private timer: NodeJS.Timeout | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly file: string;

  constructor(private readonly options: InterfaceManagerOptions) {
    this.file = StateDir.interfacesTransaction(options.stateDir);
  }

  /** A transaction left open by a previous agent is rolled back: nobody can commit it any more. */
  async init(): Promise<void> {
    if (!this.options.configurable) return;
    let stored: StoredTransaction | undefined;
    try {
      stored = JSON.parse(await readFile(this.file, 'utf8')) as StoredTransaction;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.options.logger.error({ err: error, path: this.file }, 'unreadable interface transaction; ignoring it');
      return;
    }
    this.transaction = stored;
    this.options.logger.warn({ transaction: stored.id }, 'rolling back the interface transaction left open by the previous agent');
    await this.serial(() => this.rollbackNow()).catch((error: unknown) => this.options.logger.error({ err: error }, 'interface rollback at start failed'));
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private assertConfigurable(): void {
    if (!this.options.configurable) {
      throw new VirtError('OPERATION_INVALID', 'host interface configuration is off on this agent; start it with --netns NAME or --manage-host-interfaces');
    }
  }

  private serial<T>(run: () => Promise<T>): Promise<T> {
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private publicView(t: StoredTransaction): HostInterfaceTransaction {
    return { id: t.id, startedAt: t.startedAt, expiresAt: t.expiresAt, changes: t.changes };
  }

  async list(): Promise<HostInterfaceList> {
    const interfaces = await listHostInterfaces(this.options.netns);
    return { interfaces, ...(this.transaction ? { transaction: this.publicView(this.transaction) } : {}) };
  }

  async get(name: string): Promise<HostInterface> {
    const found = (await listHostInterfaces(this.options.netns)).find((i) => i.name === name);
    if (!found) throw new VirtError('NOT_FOUND', `no host interface named ${name}`);
    return found;
  }

  async current(): Promise<HostInterfaceList> {
    if (!this.transaction) throw new VirtError('OPERATION_INVALID', 'no interface transaction is open');
    return this.list();
  }

  async begin(timeoutSeconds = DEFAULT_TRANSACTION_TIMEOUT_S): Promise<HostInterfaceTransaction> {
    this.assertConfigurable();
    return this.serial(async () => {
      if (this.transaction) throw new VirtError('OPERATION_INVALID', `interface transaction ${this.transaction.id} is already open; commit or roll it back first`);
      const now = Date.now();
      const transaction: StoredTransaction = {
        id: randomUUID(),
        startedAt: new Date(now).toISOString(),
        expiresAt: new Date(now + timeoutSeconds * 1000).toISOString(),
        changes: 0,
        snapshot: snapshotOf(await listHostInterfaces(this.options.netns)),
        created: [],
      };
      await writeJsonAtomic(this.file, transaction);
      this.transaction = transaction;
      this.arm(transaction);
      return this.publicView(transaction);
    });
  }

  private arm(transaction: StoredTransaction): void {
    if (this.timer) clearTimeout(this.timer);
    const delay = Math.max(0, Date.parse(transaction.expiresAt) - Date.now());
    this.timer = setTimeout(() => {
      void this.serial(async () => {
        if (this.transaction?.id !== transaction.id) return;
        this.options.logger.warn({ transaction: transaction.id }, 'interface transaction timed out; rolling back');
        await this.rollbackNow();
      }).catch((error: unknown) => this.options.logger.error({ err: error }, 'interface rollback on timeout failed'));
    }, delay);
    this.timer.unref();
  }

  async commit(): Promise<HostInterfaceTransaction> {
    this.assertConfigurable();
    return this.serial(async () => {
      const transaction = this.transaction;
      if (!transaction) throw new VirtError('OPERATION_INVALID', 'no interface transaction is open');
      await rm(this.file, { force: true });
      this.transaction = undefined;
      this.close();
      return this.publicView(transaction);
    });
  }

  async rollback(): Promise<HostInterfaceTransaction> {
    this.assertConfigurable();
    return this.serial(async () => {
      if (!this.transaction) throw new VirtError('OPERATION_INVALID', 'no interface transaction is open');
      return this.rollbackNow();
    });
  }

  private async rollbackNow(): Promise<HostInterfaceTransaction> {
    const transaction = this.transaction!;
    const problems = await restoreSnapshot(this.options.netns, transaction.snapshot, transaction.created);
    await rm(this.file, { force: true });
    this.transaction = undefined;
    this.close();
    if (problems.length > 0) throw new VirtError('OPERATION_FAILED', `rollback incomplete: ${problems.join('; ')}`);
    return this.publicView(transaction);
  }

  /** Applies the changes in order; if one fails, the ones before it are undone and the error is returned. */
  async configure(changes: readonly HostInterfaceChange[]): Promise<HostInterfaceList> {
    this.assertConfigurable();
    return this.serial(async () => {
      const netns = this.options.netns;
      const before = snapshotOf(await listHostInterfaces(netns));
      const created: string[] = [];
      try {
        for (const change of changes) {
          checkChange(await listHostInterfaces(netns), change);
          if (change.action === 'create-bridge' || change.action === 'create-vlan') {
            created.push(change.name);
            await this.record((t) => t.created.push(change.name));
          }
          await applyChange(netns, change);
          await this.record((t) => (t.changes += 1));
        }
      } catch (error) {
        const problems = await restoreSnapshot(netns, before, created).catch((restoreError: unknown) => [(restoreError as Error).message]);
        if (problems.length > 0) this.options.logger.error({ problems }, 'undoing a failed interface change was incomplete');
        throw error;
      }
      return this.list();
    });
  }

  private async record(update: (t: StoredTransaction) => void): Promise<void> {
    if (!this.transaction) return;
    update(this.transaction);
    await writeJsonAtomic(this.file, this.transaction);
  }
}

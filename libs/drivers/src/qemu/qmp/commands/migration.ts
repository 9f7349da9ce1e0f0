import { QmpCommandGroup, type ExecuteOptions } from './run.js';

/** MigrationStatus (qapi/migration.json). */
export type QmpMigrationStatus =
  | 'none'
  | 'setup'
  | 'cancelling'
  | 'cancelled'
  | 'active'
  | 'postcopy-active'
  | 'postcopy-paused'
  | 'postcopy-recover'
  | 'completed'
  | 'failed'
  | 'colo'
  | 'pre-switchover'
  | 'device'
  | 'wait-unplug';

/** MigrationStats (qapi/migration.json), the members we read. */
export interface QmpMigrationStats {
  transferred: number;
  remaining: number;
  total: number;
  'dirty-sync-count': number;
  'dirty-pages-rate': number;
}

/** MigrationInfo (qapi/migration.json), the members we read; all optional (none before a first migration). */
export interface QmpMigrationInfo {
  status?: QmpMigrationStatus;
  ram?: QmpMigrationStats;
  'total-time'?: number;
  downtime?: number;
  'error-desc'?: string;
}

/** MigrationCapability (qapi/migration.json), the ones we set. */
export type QmpMigrationCapability = 'auto-converge' | 'postcopy-ram' | 'events';

/** MigrateSetParameters (qapi/migration.json), the ones we set; '' clears the TLS settings. */
export interface QmpMigrateSetParameters {
  'downtime-limit'?: number;
  'max-bandwidth'?: number;
  'tls-creds'?: string;
  'tls-hostname'?: string;
}

/** Live migration, also the transport of save/restore (qapi/migration.json). */
export class MigrationCommands extends QmpCommandGroup {
  queryMigrate(options?: ExecuteOptions): Promise<QmpMigrationInfo> {
    return this.run<QmpMigrationInfo>('query-migrate', undefined, options);
  }

  async migrate(uri: string, options?: ExecuteOptions): Promise<void> {
    await this.run('migrate', { uri }, options);
  }

  /** Starts listening in a QEMU run with `-incoming defer`. */
  async migrateIncoming(uri: string, options?: ExecuteOptions): Promise<void> {
    await this.run('migrate-incoming', { uri }, options);
  }

  async migrateSetCapabilities(capabilities: { capability: QmpMigrationCapability; state: boolean }[], options?: ExecuteOptions): Promise<void> {
    await this.run('migrate-set-capabilities', { capabilities }, options);
  }

  async migrateSetParameters(parameters: QmpMigrateSetParameters, options?: ExecuteOptions): Promise<void> {
    await this.run('migrate-set-parameters', parameters, options);
  }

  async migrateCancel(options?: ExecuteOptions): Promise<void> {
    await this.run('migrate_cancel', undefined, options);
  }

  async migrateStartPostcopy(options?: ExecuteOptions): Promise<void> {
    await this.run('migrate-start-postcopy', undefined, options);
  }
}

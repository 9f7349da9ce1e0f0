/** The QEMU driver's only way to QMP: the typed command groups on `Qmp`; the monitor stays inside this folder. */
export { Qmp, type EventWait } from './qmp.js';
export { QmpClosedError, QmpCommandError, QmpTimeoutError, type ConnectOptions, type ExecuteOptions, type QmpEvent } from './monitor.js';
export type { QemuRunStatus, QmpBalloonGuestStats, QmpBalloonInfo, QmpCpuInfoFast, QmpStatusInfo } from './commands/lifecycle.js';
export type { QmpBlockDeviceInfo, QmpBlockDeviceStats, QmpBlockInfo, QmpBlockStats, QmpBlockdevOptions, QmpBlockExportInfo, QmpImageInfo, QmpIoThrottle } from './commands/block.js';
export type { QmpMigrateSetParameters, QmpMigrationCapability, QmpMigrationInfo, QmpMigrationStats, QmpMigrationStatus } from './commands/migration.js';
export type { QmpBlockJobInfo, QmpJobInfo, QmpJobStatus } from './commands/jobs.js';
export type { QmpBlockdevSnapshot, QmpSnapshotJob } from './commands/snapshots.js';
export type { QmpNetdevTap } from './commands/net.js';
export type { QmpDeviceAdd, QmpTlsCredsX509 } from './commands/misc.js';
export { domainEventsOf, GUEST_AGENT_CHANNEL, type MappedDomainEvent, type QmpEventData } from './events.js';
export type { QmpCpuDefinitionInfo, QmpCpuModelExpansion, QmpMachineInfo } from './commands/capabilities.js';
export type { QmpCpuInstanceProperties, QmpHotpluggableCpu } from './commands/machine.js';

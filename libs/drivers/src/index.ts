export type {
  ConsoleCapability,
  ConsoleSession,
  GraphicsCapability,
  GraphicsSession,
  DomainRecord,
  DiskCapability,
  DomainRuntime,
  DriverContext,
  ExecCapability,
  GuestAgentCapability,
  HypervisorDriver,
  NicCapability,
  ResourceCapability,
  BlockJobCapability,
  AdoptedBlockJob,
  BlockJobRun,
  BlockJobStart,
  BlockJobWatch,
  IncomingOptions,
  IncomingTarget,
  MigrationCapability,
  MigrationHostFacts,
  MigrationStatus,
  OutgoingOptions,
  Media,
  PluggedDisk,
  RunState,
  SaveRestoreCapability,
  SnapshotCapability,
  SnapshotContext,
  SnapshotReverted,
  SnapshotTaken,
  StartOptions,
  StatsCapability,
  WaitOptions,
} from './driver.js';
export { TestDriver, type TestDriverOptions } from './test/test-driver.js';
export { buildCommandLine, diskTargets, qemuPaths } from './qemu/command-line.js';
export { nvramPath } from './qemu/machine.js';
export { QemuDriver, type QemuDriverOptions, type ShutdownOptions } from './qemu/qemu-driver.js';
export { LxcDriver, type LxcDriverOptions } from './lxc/lxc-driver.js';
export { DriverFactories, DriverNames, createDrivers, type DriverName, type DriverOptions } from './registry.js';
export { ATOMIC_TEMP_NAME, removeAtomicTemps, writeAndRename, writeFileAtomic, writeJsonAtomic } from './util/atomic.js';
export type {
  CreateVolumeSpec,
  PoolBackend,
  PoolDefinition,
  PoolUsage,
  ProgressFn,
  ReadSource,
  VolumeDetails,
  WriteTarget,
} from './storage/backend.js';
export { PoolBackends, createPoolBackends } from './storage/registry.js';
export { DirPoolBackend } from './storage/dir.js';
export { LogicalPoolBackend } from './storage/logical.js';
export { volumePathIn } from './storage/paths.js';
export { parseQemuImgInfo, qemuImgInfo, type ImageInfo } from './storage/qemu-img.js';
export { NETNS_DIR, assertNetnsName, inNetns, netnsPath, runInNetns, type NetnsCommand } from './util/netns.js';
export { runTool, type RunOptions } from './storage/run.js';
export type { NetworkResolver, NicAttachment, UndefineOptions } from './driver.js';
export { NetworkDriver, type NetworkDriverOptions, type NetworkRuntime } from './network/network-driver.js';
export {
  assertInterfaceName,
  defaultBridgeName,
  nftTableName,
  validateDefinition as validateNetworkDefinition,
  validateHosts as validateNetworkHosts,
  type NetworkDefinition,
} from './network/definition.js';
export { dnsmasqConfig, dhcpHostsFile, parseLeases } from './network/dnsmasq.js';
export { nftRuleset } from './network/nft.js';
export { runningTapNics, tapName, type TapNic } from './qemu/nics.js';
export {
  applyChange,
  checkChange,
  listHostInterfaces,
  parseAddressCidr,
  parseIpAddr,
  restoreSnapshot,
  snapshotOf,
  type InterfaceSnapshot,
} from './hostnet/interfaces.js';
export { encodeSaveHeader, readSaveHeader, writeSaveFile, type SaveHeader } from './save-file.js';
export { buildNoCloudIso, NOCLOUD_LABEL, type NoCloudFiles } from './storage/cloud-init.js';
export {
  FIREWALL_FAMILY,
  FIREWALL_TABLE,
  applyScript as firewallApplyScript,
  renderNicChains,
  renderRule as renderFirewallRule,
  type NicFilterSpec,
  type RuleSetBody,
} from './firewall/nft.js';
export { applyNicFilter, listFilteredDevices, removeNicFilter, type NicFilterTarget } from './firewall/apply.js';
export { LibvirtClient, LibvirtStream, parseLibvirtUri, DEFAULT_LIBVIRT_SOCKET, type LibvirtClientOptions } from './libvirt/client.js';
export { LibvirtRemoteError, virtErrorFromRemote } from './libvirt/errors.js';
export { decodeXdr as decodeLibvirtXdr } from './libvirt/xdr.js';
export {
  AuthType,
  DomainEvents as LibvirtDomainEvents,
  DomainState,
  StatsGroup as LibvirtStatsGroup,
  ListDomainsFlag,
  Procedures as LibvirtProcedures,
  UndefineFlag,
  uuidBytes,
  uuidString,
  type DomainRef as LibvirtDomainRef,
  type ProcedureArgs as LibvirtProcedureArgs,
  type ProcedureName as LibvirtProcedureName,
  type ProcedureReply as LibvirtProcedureReply,
} from './libvirt/protocol.js';
export { LibvirtDriver, renderDomainXml, runStateOf, statsFromParams, type LibvirtDomainEvent, type LibvirtDriverOptions } from './libvirt/libvirt-driver.js';

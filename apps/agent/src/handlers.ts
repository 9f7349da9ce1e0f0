import { baselineCpu, compareCpu, VirtError, type DriverInfo } from '@virtbus/api-contract';
import { consoleOf, type ConsoleHub } from './console-hub.js';
import { graphicsDriver, graphicsOf, type GraphicsHub } from './graphics-hub.js';
import type { DomainManager } from './domains/manager.js';
import { blockJobOf } from './domains/block-jobs.js';
import { defineFromImage } from './domains/provision.js';
import type { MigrationManager } from './migration/manager.js';
import { readHostCapabilities, readHostCpu, readNodeInfo } from './node-info.js';
import { readNodeStats } from './node-stats.js';
import { pageBudget, pageFields, pageOf } from './paging.js';
import type { OperationHandlers } from './service.js';
import { createFirewallHandlers, withFirewallSync } from './firewall/handlers.js';
import type { FirewallManager } from './firewall/manager.js';
import { createInterfaceHandlers } from './interfaces/handlers.js';
import type { InterfaceManager } from './interfaces/manager.js';
import { createSnapshotHandlers } from './snapshots/handlers.js';
import { createGuestAgentHandlers } from './guest-agent/handlers.js';
import type { SnapshotService } from './snapshots/service.js';
import { createStorageHandlers } from './storage/handlers.js';
import type { StorageManager } from './storage/manager.js';
import { createNetworkHandlers } from './networks/handlers.js';
import type { NetworkManager } from './networks/manager.js';

export interface HandlerDeps {
  node: string;
  version: string;
  startedAt: string;
  manager: DomainManager;
  consoles: ConsoleHub;
  graphics: GraphicsHub;
  driverInfo: DriverInfo[];
  storage: StorageManager;
  networks: NetworkManager;
  interfaces: InterfaceManager;
  migrations: MigrationManager;
  snapshots: SnapshotService;
  firewall: FirewallManager;
}

/** What each contract operation does on this agent. */
export function createHandlers(deps: HandlerDeps): OperationHandlers {
  const { manager, consoles } = deps;
  const consoleTarget = (id: string) => {
    const record = manager.record(id);
    return { record, driver: manager.driverFor(record.config) };
  };
  return {
    'node.info': () => readNodeInfo(deps.node, deps.version, deps.startedAt, deps.driverInfo),
    'node.stats': () => readNodeStats(deps.node),
    'node.capabilities': () => readHostCapabilities(deps.node, deps.driverInfo),
    'node.domcapabilities': ({ driver: type, machine }) => {
      const driver = manager.driverForType(type);
      if (!driver.domainCapabilities) throw new VirtError('OPERATION_UNSUPPORTED', `the ${driver.name} driver does not describe its domain capabilities`);
      return driver.domainCapabilities.describe(type, machine);
    },
    'node.cpu.compare': async ({ cpu }) => compareCpu(await readHostCpu(), cpu),
    'node.cpu.baseline': async ({ cpus }) => baselineCpu([await readHostCpu(), ...cpus]),
    'domain.list': async (query, context) => manager.listPage(query, pageBudget(context)),
    'domain.get': async ({ id }) => manager.get(id),
    'domain.define': (post) => manager.define(post),
    'domain.create': ({ paused, ...post }) => manager.create(post, paused === true),
    'domain.update': ({ id, config }) => manager.update(id, config),
    'domain.undefine': ({ id, keepNvram }) => manager.undefine(id, { keepNvram: keepNvram === true }),
    'domain.state': ({ id, change }) => manager.changeState(id, change),
    'domain.state.get': async ({ id }) => {
      const { uuid, name, state, reason, stateChangedAt } = manager.get(id);
      return { uuid, name, state, reason, stateChangedAt };
    },
    'domain.stats': ({ id }) => manager.stats.get(id),
    'domain.xml': ({ id }) => manager.nativeXml(id),
    'domain.import': (request) => manager.importNative(request),
    'domain.stats.all': async (query, context) => {
      const page = pageOf(await manager.stats.all(), (stats) => [stats.name, stats.uuid], query, context);
      return { domains: page.items, ...pageFields(page) };
    },
    'domain.exec': ({ id, exec }) => manager.exec(id, exec),
    'domain.qemu.monitor': async ({ id, monitor }) => ({
      return: await manager.hypervisorCall(id, 'custom-monitor', 'qemu-monitor-command', (driver) => driver.monitor, (capability, record) => capability.command(record, monitor)),
    }),
    'domain.lxc.enter': ({ id, enter }) =>
      manager.hypervisorCall(id, 'custom-namespace', 'lxc-enter-namespace', (driver) => driver.namespaces, (capability, record) => capability.enter(record, enter)),
    'domain.migrate': ({ id, migration, ticket }) => deps.migrations.migrate(id, migration, ticket),
    'migration.accept': async (request) => deps.migrations.accept(request),
    'domain.define.image': (request) => defineFromImage(request, deps.storage, manager),
    'domain.disk.attach': ({ id, attach }) => manager.devices.attachDisk(id, attach),
    'domain.disk.detach': ({ id, target, detach }) => manager.devices.detachDisk(id, target, detach),
    'domain.media.change': ({ id, target, change }) => manager.devices.changeMedia(id, target, change),
    'domain.vcpus.set': ({ id, set }) => manager.resources.setVcpus(id, set),
    'domain.memory.set': ({ id, set }) => manager.resources.setMemory(id, set),
    'domain.block.commit': ({ id, target, body }) => manager.blockJobs.start(id, target, blockJobOf('commit', body), deps.storage.operations),
    'domain.block.pull': ({ id, target, body }) => manager.blockJobs.start(id, target, blockJobOf('pull', body), deps.storage.operations),
    'domain.block.copy': ({ id, target, body }) => manager.blockJobs.start(id, target, blockJobOf('copy', body), deps.storage.operations),
    'domain.blockjob.get': ({ id, target }) => manager.blockJobs.info(id, target),
    'domain.blockjob.abort': ({ id, target, abort }) => manager.blockJobs.abort(id, target, abort.pivot === true, deps.storage.operations),
    'domain.block.resize': ({ id, target, resize }) => manager.blockJobs.resize(id, target, resize.sizeBytes),
    'domain.block.iotune': ({ id, target, tune }) => manager.blockJobs.setIoTune(id, target, tune),
    'domain.console.read': async ({ id }) => {
      const { record, driver } = consoleTarget(id);
      return consoles.read(record, driver);
    },
    'domain.console.attach': async ({ id, force }) => {
      const { record, driver } = consoleTarget(id);
      return consoles.attach(record, driver, force ?? false);
    },
    'domain.console.write': async ({ id, session, data }) => {
      const bytes = Buffer.from(data, 'base64');
      if (bytes.length > 65_536) throw new VirtError('INVALID_ARG', 'console writes are limited to 64 KiB');
      const { record, driver } = consoleTarget(id);
      consoleOf(driver);
      consoles.write(record, session, bytes);
      return {};
    },
    'domain.console.detach': async ({ id, session }) => {
      const { record, driver } = consoleTarget(id);
      consoleOf(driver);
      consoles.detach(record, session);
      return {};
    },
    'domain.graphics.attach': async ({ id, exclusive, force }) => {
      const { record, driver } = consoleTarget(id);
      return deps.graphics.attach(record, driver, { exclusive: exclusive ?? false, force: force ?? false });
    },
    'domain.graphics.write': async ({ id, session, data, ack }) => {
      const bytes = data === undefined ? undefined : Buffer.from(data, 'base64');
      if (bytes && bytes.length > 65_536) throw new VirtError('INVALID_ARG', 'graphics writes are limited to 64 KiB');
      const { record, driver } = consoleTarget(id);
      graphicsDriver(driver);
      deps.graphics.write(record, session, bytes, ack);
      return {};
    },
    'domain.graphics.detach': async ({ id, session }) => {
      const { record, driver } = consoleTarget(id);
      graphicsDriver(driver);
      deps.graphics.detach(record, session);
      return {};
    },
    'domain.screenshot': async ({ id }) => {
      const { record, driver } = consoleTarget(id);
      const png = await graphicsOf(record, driver).screenshot(record);
      return { format: 'png' as const, data: png.toString('base64') };
    },
    'domain.sendKey': async ({ id, keys, holdTime }) => {
      const { record, driver } = consoleTarget(id);
      await graphicsOf(record, driver).sendKey(record, keys, holdTime ?? 100);
      return {};
    },
    ...createStorageHandlers(deps.storage),
    ...withFirewallSync(createNetworkHandlers(deps.networks, manager), deps.firewall),
    ...createInterfaceHandlers(deps.interfaces),
    ...createSnapshotHandlers(deps.snapshots),
    ...createGuestAgentHandlers(manager),
    ...createFirewallHandlers(deps.firewall),
    ...deps.migrations.peerHandlers(),
  };
}

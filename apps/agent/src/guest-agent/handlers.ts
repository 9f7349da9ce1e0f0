import { VirtError, type GuestAgentOperations } from '@virtbus/api-contract';
import type { GuestAgentCapability, DomainRecord } from '@virtbus/drivers';
import type { DomainManager } from '../domains/manager.js';
import type { OperationHandlers } from '../service.js';

type GuestAgentOperationName = keyof typeof GuestAgentOperations;

/**
 * Guest agent calls: not under the domain's job lock (they change no record and may take seconds); the driver
 * serialises one domain's agent calls itself.
 */
export function createGuestAgentHandlers(manager: DomainManager): Pick<OperationHandlers, GuestAgentOperationName> {
  const withAgent = <T>(id: string, operation: string, fn: (agent: GuestAgentCapability, record: DomainRecord) => Promise<T>): Promise<T> => {
    const record = manager.record(id);
    const driver = manager.driverFor(record.config);
    const agent = driver.guestAgent;
    if (!agent) throw new VirtError('OPERATION_UNSUPPORTED', `the ${driver.name} driver has no guest agent`);
    if (record.state !== 'running') throw new VirtError('OPERATION_INVALID', `domain ${record.config.name} is ${record.state}: its guest agent needs it running`);
    return manager.driverCall(driver, operation, record, () => fn(agent, record));
  };
  return {
    'domain.agent.ping': async ({ id }) => {
      await withAgent(id, 'agent.ping', (agent, record) => agent.ping(record));
      return {};
    },
    'domain.agent.info': ({ id }) => withAgent(id, 'agent.info', (agent, record) => agent.info(record)),
    'domain.interface.addresses': async ({ id }) => ({ interfaces: await withAgent(id, 'agent.interfaces', (agent, record) => agent.interfaces(record)) }),
    'domain.fs.freeze': async ({ id, mountpoints }) => ({ filesystems: await withAgent(id, 'agent.fsfreeze', (agent, record) => agent.fsFreeze(record, mountpoints)) }),
    'domain.fs.thaw': async ({ id }) => ({ filesystems: await withAgent(id, 'agent.fsthaw', (agent, record) => agent.fsThaw(record)) }),
    'domain.user.password': async ({ id, user, password, crypted }) => {
      await withAgent(id, 'agent.password', (agent, record) => agent.setUserPassword(record, user, password, crypted === true));
      return {};
    },
    'domain.time.get': ({ id }) => withAgent(id, 'agent.time', (agent, record) => agent.getTime(record)),
    'domain.time.set': ({ id, sync, seconds, nanoseconds }) => {
      if (sync === true && seconds !== undefined) throw new VirtError('INVALID_ARG', 'give sync or seconds, not both');
      if (seconds === undefined && nanoseconds !== undefined) throw new VirtError('INVALID_ARG', 'nanoseconds need seconds');
      return withAgent(id, 'agent.time', (agent, record) => agent.setTime(record, seconds === undefined ? undefined : { seconds, nanoseconds: nanoseconds ?? 0 }));
    },
  };
}

import { pageByName, pageFields } from '../paging.js';
import type { OperationHandlers } from '../service.js';
import type { InterfaceManager } from './manager.js';

type InterfaceOperationName = Extract<keyof OperationHandlers, `iface.${string}`>;

/** What each host interface contract operation does on this agent. */
export function createInterfaceHandlers(interfaces: InterfaceManager): Pick<OperationHandlers, InterfaceOperationName> {
  return {
    'iface.list': async (query, context) => {
      const { interfaces: all, ...rest } = await interfaces.list();
      // the open transaction travels on every page: the interfaces get what it leaves
      const page = pageByName(all, query, context, Buffer.byteLength(JSON.stringify(rest)));
      return { ...rest, interfaces: page.items, ...pageFields(page) };
    },
    'iface.get': ({ name }) => interfaces.get(name),
    'iface.transaction': () => interfaces.current(),
    'iface.begin': ({ timeoutSeconds }) => interfaces.begin(timeoutSeconds),
    'iface.commit': () => interfaces.commit(),
    'iface.rollback': () => interfaces.rollback(),
    'iface.configure': ({ changes }) => interfaces.configure(changes),
  };
}

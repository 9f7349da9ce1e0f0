import { namedListPage, pageFields, pageOf } from '../paging.js';
import type { OperationHandlers } from '../service.js';
import type { StorageManager } from './manager.js';

type StorageOperationName = Extract<keyof OperationHandlers, `pool.${string}` | `volume.${string}` | `operation.${string}`>;

/** What each storage contract operation does on this agent. */
export function createStorageHandlers(storage: StorageManager): Pick<OperationHandlers, StorageOperationName> {
  return {
    'pool.list': async (query, context) => namedListPage('pools', await storage.list(), query, context),
    'pool.get': ({ pool }) => storage.get(pool),
    'pool.define': (post) => storage.define(post),
    'pool.update': ({ pool, config }) => storage.update(pool, config),
    'pool.undefine': ({ pool }) => storage.undefine(pool),
    'pool.state': ({ pool, change }) => storage.changeState(pool, change),
    'volume.list': async (query, context) => namedListPage('volumes', await storage.listVolumes(query.pool), query, context),
    'volume.get': ({ pool, volume }) => storage.getVolume(pool, volume),
    'volume.create': ({ pool, volume }) => storage.createVolume(pool, volume),
    'volume.delete': ({ pool, volume }) => storage.deleteVolume(pool, volume),
    'volume.resize': ({ pool, volume, resize }) => storage.resizeVolume(pool, volume, resize.capacity, resize.allowShrink ?? false),
    'volume.clone': ({ pool, volume, clone }) => storage.cloneVolume(pool, volume, clone.name),
    'volume.wipe': ({ pool, volume }) => storage.wipeVolume(pool, volume),
    'volume.upload': ({ pool, volume, sizeBytes, create }) => storage.upload(pool, volume, sizeBytes, create),
    'volume.download': ({ pool, volume }) => storage.download(pool, volume),
    'operation.list': async (query, context) => {
      const page = pageOf(storage.operations.list(), (operation) => [operation.createdAt, operation.id], query, context);
      return { operations: page.items, ...pageFields(page) };
    },
    'operation.get': async ({ id }) => storage.operations.get(id),
    'operation.cancel': async ({ id }) => storage.operations.cancel(id),
  };
}

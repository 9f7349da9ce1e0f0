import { pageFields, pageOf } from '../paging.js';
import type { OperationHandlers } from '../service.js';
import type { SnapshotService } from './service.js';

type SnapshotOperationName = Extract<keyof OperationHandlers, `domain.snapshot.${string}` | 'domain.save' | 'domain.restore' | `domain.managedsave${string}`>;

/** What each snapshot and save/restore contract operation does on this agent. */
export function createSnapshotHandlers(snapshots: SnapshotService): Pick<OperationHandlers, SnapshotOperationName> {
  return {
    'domain.snapshot.list': async ({ id, ...query }, context) => {
      const { snapshots: all, current } = await snapshots.list(id);
      // (creation time, name) never changes: a page boundary stays put while snapshots come and go; parents still come first
      const page = pageOf(all, (snapshot) => [snapshot.createdAt, snapshot.name], query, context);
      return { snapshots: page.items, ...(current !== undefined ? { current } : {}), ...pageFields(page) };
    },
    'domain.snapshot.get': ({ id, snapshot }) => snapshots.get(id, snapshot),
    'domain.snapshot.create': ({ id, snapshot }) => snapshots.create(id, snapshot),
    'domain.snapshot.revert': ({ id, snapshot }) => snapshots.revert(id, snapshot),
    'domain.snapshot.delete': ({ id, snapshot, options }) => snapshots.delete(id, snapshot, options),
    'domain.save': ({ id, target }) => snapshots.save(id, target),
    'domain.restore': (post) => snapshots.restore(post),
    'domain.managedsave.get': ({ id }) => snapshots.managedSaveInfo(id),
    'domain.managedsave': ({ id }) => snapshots.managedSave(id),
    'domain.managedsave.remove': ({ id }) => snapshots.managedSaveRemove(id),
  };
}

import type { DomainSnapshot, DomainSnapshotList } from '@virtbus/api-contract';
import { listAll, print, resolveNode, type CommandContext } from './commands.js';
import { table } from './format.js';
import { operationUrl } from './http.js';

async function domainParams(ctx: CommandContext, id: string): Promise<{ node: string; id: string }> {
  return { node: await resolveNode(ctx), id };
}

/** `virsh snapshot-list --tree`: children indented under their parent, the current one marked. */
export function snapshotTree(list: DomainSnapshotList): string {
  const byName = new Map(list.snapshots.map((snapshot) => [snapshot.name, snapshot]));
  const lines: string[] = [];
  const visit = (snapshot: DomainSnapshot, prefix: string, last: boolean, root: boolean) => {
    const mark = snapshot.current ? ' (current)' : '';
    lines.push(root ? `${snapshot.name}${mark}` : `${prefix}${last ? '└── ' : '├── '}${snapshot.name}${mark}`);
    const childPrefix = root ? '' : `${prefix}${last ? '    ' : '│   '}`;
    snapshot.children.forEach((name, index) => {
      const child = byName.get(name);
      if (child) visit(child, root ? '' : childPrefix, index === snapshot.children.length - 1, false);
    });
  };
  for (const snapshot of list.snapshots) if (snapshot.parent === undefined || !byName.has(snapshot.parent)) visit(snapshot, '', true, true);
  return lines.join('\n');
}

export async function snapshotCreate(ctx: CommandContext, id: string, body: { name?: string; kind?: string; description?: string }): Promise<void> {
  const snapshot = await ctx.http.call('domain.snapshot.create', await domainParams(ctx, id), body);
  print(ctx, snapshot, () => `Domain snapshot ${snapshot.name} created (${snapshot.kind}${snapshot.memory ? ', with memory' : ', disk only'})`);
}

export async function snapshotList(ctx: CommandContext, id: string, tree: boolean): Promise<void> {
  let current: string | undefined;
  // every page: the tree needs every snapshot
  const snapshots = await listAll<'snapshots', DomainSnapshot>(ctx, operationUrl('domain.snapshot.list', await domainParams(ctx, id)), 'snapshots', {
    onPage: (page) => (current = (page as DomainSnapshotList).current ?? current),
  });
  const list: DomainSnapshotList = { snapshots, ...(current !== undefined ? { current } : {}) };
  print(ctx, list, () =>
    tree
      ? snapshotTree(list)
      : table(
          ['Name', 'Creation Time', 'State', 'Kind', 'Parent', 'Current'],
          list.snapshots.map((s) => [s.name, s.createdAt, s.state, s.kind, s.parent ?? '', s.current ? 'yes' : '']),
        ),
  );
}

export async function snapshotInfo(ctx: CommandContext, id: string, name: string): Promise<void> {
  const s = await ctx.http.call('domain.snapshot.get', { ...(await domainParams(ctx, id)), snapshot: name });
  print(ctx, s, () =>
    [
      `Name:      ${s.name}`,
      `Kind:      ${s.kind}${s.memory ? ' (with memory)' : ' (disk only)'}`,
      `State:     ${s.state}`,
      `Parent:    ${s.parent ?? '-'}`,
      `Children:  ${s.children.length}`,
      `Current:   ${s.current ? 'yes' : 'no'}`,
      `Created:   ${s.createdAt}`,
      ...s.disks.map((d) => `Disk ${d.target}: ${d.file}${d.overlay ? ` (overlay ${d.overlay})` : ''}`),
    ].join('\n'),
  );
}

export async function snapshotRevert(ctx: CommandContext, id: string, name: string): Promise<void> {
  const d = await ctx.http.call('domain.snapshot.revert', { ...(await domainParams(ctx, id)), snapshot: name });
  print(ctx, d, () => `Domain '${d.name}' reverted to snapshot ${name}: ${d.state} (${d.reason})`);
}

export async function snapshotDelete(ctx: CommandContext, id: string, name: string, options: { mode?: string; metadataOnly?: boolean }): Promise<void> {
  const query = new URLSearchParams();
  if (options.mode) query.set('mode', options.mode);
  if (options.metadataOnly) query.set('metadataOnly', 'true');
  const result = await ctx.http.call('domain.snapshot.delete', { ...(await domainParams(ctx, id)), snapshot: name }, undefined, query);
  print(ctx, result, () => `Domain snapshot${result.deleted.length === 1 ? '' : 's'} ${result.deleted.join(', ') || '(none)'} deleted`);
}

export async function save(ctx: CommandContext, id: string, pool: string, volume: string): Promise<void> {
  const d = await ctx.http.call('domain.save', await domainParams(ctx, id), { pool, volume });
  print(ctx, d, () => `Domain '${d.name}' saved to ${pool}/${volume}`);
}

export async function restore(ctx: CommandContext, pool: string, volume: string, paused: boolean): Promise<void> {
  const d = await ctx.http.call('domain.restore', { node: await resolveNode(ctx) }, { pool, volume, ...(paused ? { paused } : {}) });
  print(ctx, d, () => `Domain '${d.name}' restored from ${pool}/${volume}: ${d.state} (${d.reason})`);
}

export async function managedSave(ctx: CommandContext, id: string): Promise<void> {
  const d = await ctx.http.call('domain.managedsave', await domainParams(ctx, id));
  print(ctx, d, () => `Domain '${d.name}' state saved by the agent; the next start resumes it`);
}

export async function managedSaveRemove(ctx: CommandContext, id: string): Promise<void> {
  const info = await ctx.http.call('domain.managedsave.remove', await domainParams(ctx, id));
  print(ctx, info, () => `Removed managed save image for domain ${id}`);
}

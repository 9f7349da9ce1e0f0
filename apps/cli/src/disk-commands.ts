import { VirtError, type DiskAttach, type DiskDetach, type Domain, type DomainDisk, type DomainFromImage, type MediaChange, type MemorySet, type VcpusSet } from '@virtbus/api-contract';
import type { CommandContext } from './commands.js';
import { resolveNode } from './commands.js';


/** `/abs/path` is a file on the node; `pool/volume` a volume of one of its pools. */
export function diskSource(text: string): DomainDisk['source'] {
  if (text.startsWith('/')) return { path: text };
  const parts = text.split('/');
  if (parts.length !== 2 || !parts[0] || !parts[1]) throw new VirtError('INVALID_ARG', `disk source ${JSON.stringify(text)}: give /path/on/node or pool/volume`);
  return { pool: parts[0], volume: parts[1] };
}

function scopeText(d: Domain, flags: { live?: boolean | undefined; config?: boolean | undefined }): string {
  if (flags.live && flags.config) return 'live and in the definition';
  if (flags.live) return 'live';
  if (flags.config) return 'in the definition';
  return d.state === 'shutoff' ? 'in the definition' : 'live';
}

function out(ctx: CommandContext, d: Domain, text: string): void {
  ctx.output.out(ctx.output.json ? JSON.stringify(d, null, 2) : text);
}

export async function attachDisk(ctx: CommandContext, id: string, attach: DiskAttach): Promise<void> {
  const d = await ctx.http.call('domain.disk.attach', { node: await resolveNode(ctx), id }, attach);
  out(ctx, d, `Disk attached to '${d.name}' ${scopeText(d, attach)}`);
}

export async function detachDisk(ctx: CommandContext, id: string, target: string, detach: DiskDetach): Promise<void> {
  const query = new URLSearchParams();
  if (detach.live) query.set('live', 'true');
  if (detach.config) query.set('config', 'true');
  if (detach.timeout !== undefined) query.set('timeout', String(detach.timeout));
  const d = await ctx.http.call('domain.disk.detach', { node: await resolveNode(ctx), id, target }, undefined, query);
  out(ctx, d, `Disk ${target} detached from '${d.name}' ${scopeText(d, detach)}`);
}

export async function changeMedia(ctx: CommandContext, id: string, target: string, change: MediaChange): Promise<void> {
  const d = await ctx.http.call('domain.media.change', { node: await resolveNode(ctx), id, target }, change);
  out(ctx, d, change.source ? `Media in ${target} of '${d.name}' changed` : `Media ejected from ${target} of '${d.name}'`);
}

export async function setVcpus(ctx: CommandContext, id: string, set: VcpusSet): Promise<void> {
  const d = await ctx.http.call('domain.vcpus.set', { node: await resolveNode(ctx), id }, set);
  out(ctx, d, `vCPUs of '${d.name}' set to ${set.count} ${scopeText(d, set)}`);
}

export async function setMemory(ctx: CommandContext, id: string, set: MemorySet): Promise<void> {
  const d = await ctx.http.call('domain.memory.set', { node: await resolveNode(ctx), id }, set);
  out(ctx, d, `Memory of '${d.name}' set to ${set.memory} MiB ${scopeText(d, set)}`);
}

export async function defineFromImage(ctx: CommandContext, request: DomainFromImage): Promise<void> {
  const d = await ctx.http.call('domain.define.image', { node: await resolveNode(ctx) }, request);
  const disks = d.config.disks.map((disk) => ('pool' in disk.source ? `${disk.source.pool}/${disk.source.volume}` : disk.source.path)).join(', ');
  out(ctx, d, `Domain '${d.name}' defined (${d.uuid}) on ${disks}`);
}

import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  VirtError,
  type AsyncOperation,
  type StoragePool,
  type StoragePoolsPost,
  type StorageVolume,
  type StorageVolumesPost,
} from '@virtbus/api-contract';
import { listAll, need, print, printResult, resolveNode, type CommandContext } from './commands.js';
import { bytes, keyValues, table } from './format.js';
import { ProgressMeter, type ProgressSink } from './progress.js';

export type { ProgressSink } from './progress.js';
import { operationUrl } from './http.js';

export const STORAGE_USAGE = `pool-list [--prefix P] [--limit N]    storage pools of the node (every page)
pool-info POOL                        one pool: state, capacity, allocation, available
pool-define --name N --type dir|logical [--target DIR] [--source-dev DEV]...   define a pool (inactive)
pool-build POOL | pool-start POOL | pool-destroy POOL | pool-refresh POOL | pool-delete POOL
pool-autostart POOL [--disable] | pool-undefine POOL
vol-list POOL [--prefix P] [--limit N]   volumes of a pool (every page)
vol-info POOL VOL                     one volume: format, capacity, allocation, backing chain
vol-create POOL VOL SIZE [--format qcow2|raw] [--backing VOL]   SIZE like 10G, 512MiB
vol-delete POOL VOL | vol-resize POOL VOL SIZE [--shrink]
vol-clone POOL VOL NEW | vol-wipe POOL VOL   async, with progress on stderr
vol-upload POOL VOL FILE [--create] | vol-download POOL VOL FILE   stream content, with progress; prints the sha256
                                      (upload: into an existing volume, whose capacity never changes; --create makes a missing one)
`;

const POLL_MS = 250;

export interface StorageFlags {
  name?: string;
  type?: string;
  target?: string;
  sourceDevices?: string[];
  format?: string;
  backing?: string;
  shrink?: boolean;
  /** vol-upload: make a missing volume (an error otherwise). */
  create?: boolean;
  disable?: boolean;
  /** pool-list/vol-list: at most this many (every page otherwise). */
  limit?: number | undefined;
  prefix?: string;
}


/** Polls an async operation until it ends, drawing its progress; a failed or cancelled one becomes an error. */
export async function followOperation(ctx: CommandContext, node: string, start: AsyncOperation, progress: ProgressSink): Promise<AsyncOperation> {
  let operation = start;
  const meter = new ProgressMeter(progress);
  const totalOf = (op: AsyncOperation) => (op.progress.bytesTotal > 0 ? op.progress.bytesTotal : undefined);
  while (operation.status === 'running') {
    meter.update(operation.progress.bytesProcessed, totalOf(operation));
    await sleep(POLL_MS);
    operation = await ctx.http.call('operation.get', { node, id: operation.id });
  }
  meter.finish(operation.progress.bytesProcessed, totalOf(operation));
  if (operation.status !== 'success') {
    throw new VirtError(operation.error?.code ?? 'OPERATION_FAILED', `${operation.description} ${operation.status}: ${operation.error?.message ?? 'no reason given'}`);
  }
  return operation;
}

/** Counts bytes as they pass and reports them, for the progress bar of a stream. */
function counter(onBytes: (total: number) => void): Transform {
  let total = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      total += chunk.length;
      onBytes(total);
      done(null, chunk);
    },
  });
}

function poolLines(pool: StoragePool): [string, string | number | boolean | undefined][] {
  return [
    ['Name', pool.name],
    ['UUID', pool.uuid],
    ['Type', pool.type],
    ['State', pool.state],
    ['Autostart', pool.autostart ? 'yes' : 'no'],
    ['Target', pool.target],
    ['Capacity', bytes(pool.capacityBytes)],
    ['Allocation', bytes(pool.allocationBytes)],
    ['Available', bytes(pool.availableBytes)],
  ];
}

/** Runs a pool-* or vol-* verb; undefined when the command is not one of them. */
export async function runStorageCommand(ctx: CommandContext, command: string, args: readonly string[], flags: StorageFlags, progress: ProgressSink): Promise<number | undefined> {
  if (!command.startsWith('pool-') && !command.startsWith('vol-')) return undefined;
  const node = await resolveNode(ctx);
  const pool = () => ({ node, pool: need(args, 0, 'a pool name', command) });
  const volume = () => ({ ...pool(), vol: need(args, 1, 'a volume name', command) });
  switch (command) {
    case 'pool-list': {
      const list = { pools: await listAll<'pools', StoragePool>(ctx, operationUrl('pool.list', { node }), 'pools', { max: flags.limit, query: { prefix: flags.prefix } }) };
      print(ctx, list, () =>
        table(
          ['Name', 'Type', 'State', 'Autostart', 'Capacity', 'Available'],
          list.pools.map((p) => [p.name, p.type, p.state, p.autostart ? 'yes' : 'no', bytes(p.capacityBytes), bytes(p.availableBytes)]),
        ),
      );
      return 0;
    }
    case 'pool-info':
      return printResult(ctx, ctx.http.call('pool.get', pool()), (info) => keyValues(poolLines(info)));
    case 'pool-define': {
      if (!flags.name || !flags.type) throw new VirtError('INVALID_ARG', 'pool-define needs --name and --type dir|logical');
      const body = {
        name: flags.name,
        type: flags.type,
        ...(flags.target ? { target: flags.target } : {}),
        ...(flags.sourceDevices?.length ? { sourceDevices: flags.sourceDevices } : {}),
      } as StoragePoolsPost;
      const defined = await ctx.http.call('pool.define', { node }, body);
      print(ctx, defined, () => `Pool ${defined.name} defined`);
      return 0;
    }
    case 'pool-build':
    case 'pool-start':
    case 'pool-destroy':
    case 'pool-refresh':
    case 'pool-delete': {
      const action = command === 'pool-destroy' ? 'stop' : command.slice('pool-'.length);
      const result = await ctx.http.call('pool.state', pool(), { action });
      print(ctx, result, () => `Pool ${result.name}: ${action} done, ${result.state}`);
      return 0;
    }
    case 'pool-autostart':
      return printResult(ctx, ctx.http.call('pool.update', pool(), { autostart: !flags.disable }), (result) => `Pool ${result.name} ${result.autostart ? 'marked as autostarted' : 'unmarked as autostarted'}`);
    case 'pool-undefine':
      return printResult(ctx, ctx.http.call('pool.undefine', pool()), () => `Pool ${need(args, 0, 'a pool name', command)} undefined`);
    case 'vol-list': {
      const list = { volumes: await listAll<'volumes', StorageVolume>(ctx, operationUrl('volume.list', pool()), 'volumes', { max: flags.limit, query: { prefix: flags.prefix } }) };
      print(ctx, list, () => table(['Name', 'Format', 'Capacity', 'Allocation', 'Path'], list.volumes.map((v) => [v.name, v.format, bytes(v.capacityBytes), bytes(v.allocationBytes), v.path])));
      return 0;
    }
    case 'vol-info': {
      const v = await ctx.http.call('volume.get', volume());
      print(ctx, v, () =>
        keyValues([
          ['Name', v.name],
          ['Pool', v.pool],
          ['Path', v.path],
          ['Format', v.format],
          ['Capacity', bytes(v.capacityBytes)],
          ['Allocation', bytes(v.allocationBytes)],
          ['Backing', v.backingChain.map((b) => `${b.path} (${b.format})`).join(' <- ') || '-'],
        ]),
      );
      return 0;
    }
    case 'vol-create': {
      const body: StorageVolumesPost = { name: need(args, 1, 'a volume name', command), capacity: need(args, 2, 'a SIZE', command) };
      if (flags.format) body.format = flags.format as StorageVolumesPost['format'];
      if (flags.backing) body.backing = { volume: flags.backing };
      const created = await ctx.http.call('volume.create', pool(), body);
      print(ctx, created, () => `Vol ${created.name} created (${created.format}, ${bytes(created.capacityBytes)})`);
      return 0;
    }
    case 'vol-delete':
      return printResult(ctx, ctx.http.call('volume.delete', volume()), () => `Vol ${need(args, 1, 'a volume name', command)} deleted`);
    case 'vol-resize':
      return printResult(ctx, ctx.http.call('volume.resize', volume(), { capacity: need(args, 2, 'a SIZE', command), ...(flags.shrink ? { allowShrink: true } : {}) }), (resized) => `Size of volume '${resized.name}' changed to ${bytes(resized.capacityBytes)}`);
    case 'vol-clone':
    case 'vol-wipe': {
      const started = await (command === 'vol-clone' ? ctx.http.call('volume.clone', volume(), { name: need(args, 2, 'a NEW name', command) }) : ctx.http.call('volume.wipe', volume()));
      const done = await followOperation(ctx, node, started, progress);
      print(ctx, done, () => `${command === 'vol-clone' ? `Vol ${args[2]} cloned from ${args[1]}` : `Vol ${args[1]} wiped`}`);
      return 0;
    }
    case 'vol-upload': {
      const file = need(args, 2, 'a FILE', command);
      const size = (await stat(file)).size;
      const meter = new ProgressMeter(progress);
      const report = counter((sent) => meter.update(sent, size));
      const source = createReadStream(file).pipe(report);
      const operation = await ctx.http.upload<AsyncOperation>(`${operationUrl('volume.upload', volume())}${flags.create ? '?create=true' : ''}`, source, size);
      meter.finish(size, size);
      const sha256 = operation.result?.sha256;
      print(ctx, operation, () => `Uploaded ${bytes(size)} to ${args[0]}/${args[1]}${sha256 ? `, sha256 ${sha256}` : ''}`);
      return 0;
    }
    case 'vol-download': {
      const file = need(args, 2, 'a FILE', command);
      const response = await ctx.http.stream(operationUrl('volume.download', volume()));
      const header = response.headers['x-virtbus-size'];
      const size = typeof header === 'string' && /^\d+$/.test(header) ? Number(header) : undefined;
      let received = 0;
      const meter = new ProgressMeter(progress);
      const report = counter((total) => {
        received = total;
        meter.update(total, size);
      });
      await pipeline(response, report, createWriteStream(file, { mode: 0o600 }));
      meter.finish(received, size);
      const sha256 = response.trailers['x-checksum-sha256'];
      print(ctx, { file, bytes: received, sha256 }, () => `Downloaded ${bytes(received)} to ${file}${sha256 ? `, sha256 ${sha256}` : ''}`);
      return 0;
    }
    default:
      throw new VirtError('INVALID_ARG', `unknown command ${command}; see virtbus --help`);
  }
}

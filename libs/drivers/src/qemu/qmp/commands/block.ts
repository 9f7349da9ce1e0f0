import { QmpCommandGroup, type ExecuteOptions } from './run.js';

/** InetSocketAddress as SocketAddress (flat: blockdev-add nbd `server`). */
export interface QmpInetAddress {
  type: 'inet';
  host: string;
  port: string;
}

/** BlockdevOptions (qapi/block-core.json): the drivers we add — a file, a format on a node or file, an NBD client. */
export type QmpBlockdevOptions =
  | { driver: 'file'; 'node-name': string; filename: string; 'read-only'?: boolean }
  | {
      driver: 'qcow2' | 'raw';
      'node-name': string;
      /** A node name, or the file's options inline. */
      file: string | { driver: 'file'; filename: string };
      /** null: open without a backing chain (an overlay that blockdev-snapshot gives its backing). */
      backing?: string | null;
      'read-only'?: boolean;
    }
  | {
      driver: 'nbd';
      'node-name': string;
      server: QmpInetAddress;
      export?: string;
      'tls-creds'?: string;
      'tls-hostname'?: string;
    };

/** ImageInfo (qapi/block-core.json), the members we read. */
export interface QmpImageInfo {
  filename: string;
  format: string;
  'virtual-size': number;
}

/** BlockDeviceInfo (qapi/block-core.json): one node of query-named-block-nodes or a query-block `inserted`. */
export interface QmpBlockDeviceInfo {
  file: string;
  'node-name'?: string;
  ro: boolean;
  drv: string;
  image: QmpImageInfo;
  /** Current I/O limits (0: none). */
  bps?: number;
  bps_rd?: number;
  bps_wr?: number;
  iops?: number;
  iops_rd?: number;
  iops_wr?: number;
  /** The backing image path, when the top image has one. */
  backing_file?: string;
}

/** The limits block_set_io_throttle takes (BlockIOThrottle, qapi/block-core.json). */
export interface QmpIoThrottle {
  bps: number;
  bps_rd: number;
  bps_wr: number;
  iops: number;
  iops_rd: number;
  iops_wr: number;
}

/** BlockInfo (qapi/block-core.json), the members we read. */
export interface QmpBlockInfo {
  device: string;
  qdev?: string;
  inserted?: QmpBlockDeviceInfo;
}

/** BlockDeviceStats (qapi/block-core.json), the members we read. */
export interface QmpBlockDeviceStats {
  rd_bytes: number;
  wr_bytes: number;
  rd_operations: number;
  wr_operations: number;
  flush_operations: number;
  rd_total_time_ns: number;
  wr_total_time_ns: number;
  flush_total_time_ns: number;
}

/** BlockStats (qapi/block-core.json). */
export interface QmpBlockStats {
  device?: string;
  qdev?: string;
  'node-name'?: string;
  stats: QmpBlockDeviceStats;
}

/** BlockExportInfo (qapi/block-export.json). */
export interface QmpBlockExportInfo {
  id: string;
  type: string;
  'node-name': string;
  'shutting-down': boolean;
}

/** Block nodes, removable media and NBD exports (qapi/block-core.json, block.json, block-export.json). */
export class BlockCommands extends QmpCommandGroup {
  async blockdevAdd(options: QmpBlockdevOptions, execute?: ExecuteOptions): Promise<void> {
    await this.run('blockdev-add', options, execute);
  }

  async blockdevDel(nodeName: string, options?: ExecuteOptions): Promise<void> {
    await this.run('blockdev-del', { 'node-name': nodeName }, options);
  }

  queryBlock(options?: ExecuteOptions): Promise<QmpBlockInfo[]> {
    return this.run<QmpBlockInfo[]>('query-block', undefined, options);
  }

  /** Every node of every graph (`flat`: backing images as their own entries, not nested). */
  queryNamedBlockNodes(options?: ExecuteOptions): Promise<QmpBlockDeviceInfo[]> {
    return this.run<QmpBlockDeviceInfo[]>('query-named-block-nodes', { flat: true }, options);
  }

  queryBlockstats(options?: ExecuteOptions): Promise<QmpBlockStats[]> {
    return this.run<QmpBlockStats[]>('query-blockstats', undefined, options);
  }

  /** Inserts new media into a removable device (by qdev id). */
  async blockdevChangeMedium(
    args: { id: string; filename: string; format?: string; force?: boolean; 'read-only-mode'?: 'retain' | 'read-only' | 'read-write' },
    options?: ExecuteOptions,
  ): Promise<void> {
    await this.run('blockdev-change-medium', args, options);
  }

  async eject(args: { id: string; force?: boolean }, options?: ExecuteOptions): Promise<void> {
    await this.run('eject', args, options);
  }

  /** Starts QEMU's NBD server (SocketAddressLegacy: `{type: 'inet', data: {host, port}}`). */
  async nbdServerStart(args: { addr: { type: 'inet'; data: { host: string; port: string } }; 'tls-creds'?: string }, options?: ExecuteOptions): Promise<void> {
    await this.run('nbd-server-start', args, options);
  }

  async nbdServerStop(options?: ExecuteOptions): Promise<void> {
    await this.run('nbd-server-stop', undefined, options);
  }

  async blockExportAdd(args: { type: 'nbd'; id: string; 'node-name': string; name?: string; writable?: boolean }, options?: ExecuteOptions): Promise<void> {
    await this.run('block-export-add', args, options);
  }

  async blockExportDel(id: string, options?: ExecuteOptions): Promise<void> {
    await this.run('block-export-del', { id }, options);
  }

  /** Grows (or shrinks) a node's image live; the guest device sees the new size. */
  async blockResize(nodeName: string, size: number, options?: ExecuteOptions): Promise<void> {
    await this.run('block_resize', { 'node-name': nodeName, size }, options);
  }

  /** I/O limits of a guest device (by qdev id); 0 means no limit. */
  async blockSetIoThrottle(args: { id: string } & QmpIoThrottle, options?: ExecuteOptions): Promise<void> {
    await this.run('block_set_io_throttle', args, options);
  }

  queryBlockExports(options?: ExecuteOptions): Promise<QmpBlockExportInfo[]> {
    return this.run<QmpBlockExportInfo[]>('query-block-exports', undefined, options);
  }
}

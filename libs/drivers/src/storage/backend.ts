import type { FileHandle } from 'node:fs/promises';
import type { PoolType, VolumeFormat } from '@virtbus/api-contract';

/** What a backend needs to know about a pool; the agent owns and persists it. */
export interface PoolDefinition {
  readonly name: string;
  readonly type: PoolType;
  /** dir: the pool directory; logical: /dev/<vg>. */
  readonly target: string;
  readonly vgName?: string;
  readonly sourceDevices: readonly string[];
}

export interface PoolUsage {
  capacityBytes: number;
  allocationBytes: number;
  availableBytes: number;
}

export interface VolumeDetails {
  name: string;
  path: string;
  format: VolumeFormat;
  capacityBytes: number;
  allocationBytes: number;
  backingChain: { path: string; format: string }[];
}

export interface CreateVolumeSpec {
  name: string;
  format: VolumeFormat;
  capacityBytes: number;
  /** Name of a volume of the same pool to overlay (copy-on-write). */
  backing?: string;
}

/** Progress of a long call: bytes done out of bytes in all. */
export type ProgressFn = (bytesProcessed: number, bytesTotal: number) => void;

export interface ReadSource {
  handle: FileHandle;
  sizeBytes: number;
}

/** Where uploaded bytes go: written at offsets, then committed (made the volume) or aborted (partial data dropped). */
export interface WriteTarget {
  handle: FileHandle;
  /** Bytes that fit (a block device); undefined when the volume grows with the upload. */
  maxBytes?: number;
  commit(sizeBytes: number): Promise<void>;
  abort(): Promise<void>;
}

/**
 * One interface for every pool type (dir, logical; later netfs, iscsi, rbd). The agent serialises calls per
 * pool and validates names; backends check again that every path stays inside the pool.
 */
export interface PoolBackend {
  readonly type: PoolType;
  /** Whether the pool's storage exists (the directory, the volume group). */
  exists(pool: PoolDefinition): Promise<boolean>;
  build(pool: PoolDefinition): Promise<void>;
  start(pool: PoolDefinition): Promise<void>;
  stop(pool: PoolDefinition): Promise<void>;
  /** Destroys the pool's storage (must be empty of volumes for dir). */
  delete(pool: PoolDefinition): Promise<void>;
  usage(pool: PoolDefinition): Promise<PoolUsage>;
  listVolumes(pool: PoolDefinition): Promise<VolumeDetails[]>;
  /** Throws NO_STORAGE_VOL when absent. */
  volume(pool: PoolDefinition, name: string): Promise<VolumeDetails>;
  createVolume(pool: PoolDefinition, spec: CreateVolumeSpec): Promise<VolumeDetails>;
  deleteVolume(pool: PoolDefinition, name: string): Promise<void>;
  resizeVolume(pool: PoolDefinition, name: string, capacityBytes: number, allowShrink: boolean): Promise<VolumeDetails>;
  cloneVolume(pool: PoolDefinition, source: string, target: string, progress: ProgressFn, signal: AbortSignal): Promise<VolumeDetails>;
  wipeVolume(pool: PoolDefinition, name: string, progress: ProgressFn, signal: AbortSignal): Promise<void>;
  openRead(pool: PoolDefinition, name: string): Promise<ReadSource>;
  /** `existing`: the volume as it is (its capacity is kept); undefined creates it from the upload (dir pools). */
  openWrite(pool: PoolDefinition, name: string, existing?: VolumeDetails): Promise<WriteTarget>;
}

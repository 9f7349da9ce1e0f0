import { VirtError } from '@virtbus/api-contract';
import type { FileHandle } from 'node:fs/promises';
import type { ProgressFn } from './backend.js';

const ZERO_CHUNK = Buffer.alloc(1024 * 1024);

/** Overwrites `[0, size)` with zeros, reporting progress and stopping when the signal fires. */
export async function writeZeros(handle: FileHandle, size: number, progress: ProgressFn, signal: AbortSignal): Promise<void> {
  for (let offset = 0; offset < size; ) {
    if (signal.aborted) throw new VirtError('OPERATION_FAILED', 'wipe cancelled');
    const length = Math.min(ZERO_CHUNK.length, size - offset);
    const { bytesWritten } = await handle.write(ZERO_CHUNK, 0, length, offset);
    offset += bytesWritten;
    progress(offset, size);
  }
  await handle.sync();
}

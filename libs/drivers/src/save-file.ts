import { createReadStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { VirtError, type DomainConfig, type DomainState } from '@virtbus/api-contract';

const MAGIC = 'VIRTBUS-SAVE/1 ';
const MAX_HEADER_BYTES = 1024 * 1024;

/** The first line of a save file: the domain as it was, so a restore needs nothing else (libvirt keeps its XML there too). */
export interface SaveHeader {
  config: DomainConfig;
  /** The state the guest resumes in (running, or paused when it was saved paused). */
  state: DomainState;
  createdAt: string;
}

/** Header line bytes; the driver's payload starts right after them. */
export function encodeSaveHeader(header: SaveHeader): Buffer {
  return Buffer.from(`${MAGIC}${JSON.stringify(header)}\n`);
}

/** Reads a save file's header and where the payload starts; INVALID_ARG for anything that is not a save file. */
export async function readSaveHeader(path: string): Promise<{ header: SaveHeader; payloadOffset: number }> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new VirtError(code === 'ENOENT' ? 'NOT_FOUND' : 'OPERATION_FAILED', `cannot open save file ${path}: ${code ?? (error as Error).message}`, { cause: error });
  }
  try {
    const buffer = Buffer.alloc(MAX_HEADER_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, MAX_HEADER_BYTES, 0);
    const text = buffer.subarray(0, bytesRead);
    const end = text.indexOf(0x0a);
    if (!text.subarray(0, MAGIC.length).equals(Buffer.from(MAGIC)) || end < 0) throw new VirtError('INVALID_ARG', `${path} is not a virtbus save file`);
    const header = JSON.parse(text.subarray(MAGIC.length, end).toString('utf8')) as SaveHeader;
    if (!header?.config?.uuid || !header.state) throw new VirtError('INVALID_ARG', `${path} has a damaged save header`);
    return { header, payloadOffset: end + 1 };
  } catch (error) {
    if (error instanceof VirtError) throw error;
    throw new VirtError('INVALID_ARG', `${path} has a damaged save header`, { cause: error });
  } finally {
    await handle.close();
  }
}

/** Writes a whole save file (header + payload, or the bytes of the file `payload.from`) under a temporary name, then renames it into place. */
export async function writeSaveFile(path: string, header: SaveHeader, payload: Buffer | { from: string }): Promise<void> {
  const temporary = `${path}.partial`;
  try {
    const handle = await open(temporary, 'w', 0o600);
    try {
      if (Buffer.isBuffer(payload)) await handle.writeFile(Buffer.concat([encodeSaveHeader(header), payload]));
      else {
        // a hypervisor's image may be large: streamed, never whole in memory
        await handle.writeFile(encodeSaveHeader(header));
        for await (const chunk of createReadStream(payload.from)) await handle.writeFile(chunk as Buffer);
      }
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

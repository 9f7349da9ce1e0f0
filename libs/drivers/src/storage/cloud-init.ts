import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtError } from '@virtbus/api-contract';
import { runTool } from './run.js';

/** The files of a cloud-init NoCloud seed, by their names on the ISO. */
export interface NoCloudFiles {
  'user-data': string;
  'meta-data': string;
  'network-config'?: string;
}

/** The volume label cloud-init's NoCloud datasource looks for. */
export const NOCLOUD_LABEL = 'cidata';

/** Builds a NoCloud seed ISO9660 image (label `cidata`, Joliet + Rock Ridge names) with genisoimage; returns its bytes. */
export async function buildNoCloudIso(files: NoCloudFiles): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'virtbus-cidata-'));
  try {
    const names = Object.keys(files).filter((name) => files[name as keyof NoCloudFiles] !== undefined);
    for (const name of names) await writeFile(join(dir, name), files[name as keyof NoCloudFiles]!, { mode: 0o600 });
    const iso = join(dir, 'seed.iso');
    try {
      await runTool('genisoimage', ['-quiet', '-output', iso, '-volid', NOCLOUD_LABEL, '-joliet', '-rock', ...names.map((name) => join(dir, name))]);
    } catch (error) {
      throw new VirtError('OPERATION_FAILED', `cannot build the cloud-init seed ISO (genisoimage, Debian package genisoimage): ${(error as Error).message}`, { cause: error });
    }
    return await readFile(iso);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

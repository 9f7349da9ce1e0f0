import { parseJsonOr, VirtError, type VolumeFormat } from '@virtbus/api-contract';
import { runTool, type RunOptions } from './run.js';

export interface ImageInfo {
  format: string;
  virtualSize: number;
  actualSize: number;
  backingChain: { path: string; format: string }[];
}

interface QemuImgEntry {
  filename?: unknown;
  format?: unknown;
  'virtual-size'?: unknown;
  'actual-size'?: unknown;
}

const num = (value: unknown) => (typeof value === 'number' && Number.isFinite(value) ? value : 0);

/** Parses `qemu-img info --output=json [--backing-chain]`: one object, or the chain as an array (the image first). */
export function parseQemuImgInfo(json: string): ImageInfo {
  const parsed = parseJsonOr(json, 'OPERATION_FAILED', 'qemu-img info printed something that is not JSON');
  const chain = (Array.isArray(parsed) ? parsed : [parsed]) as QemuImgEntry[];
  const [top, ...backing] = chain;
  if (!top || typeof top !== 'object' || typeof top.format !== 'string') throw new VirtError('OPERATION_FAILED', 'qemu-img info gave no format');
  return {
    format: top.format,
    virtualSize: num(top['virtual-size']),
    actualSize: num(top['actual-size']),
    backingChain: backing.map((entry) => ({ path: String(entry.filename ?? ''), format: String(entry.format ?? '') })),
  };
}

export async function qemuImgInfo(path: string, options: { format?: VolumeFormat } = {}): Promise<ImageInfo> {
  const args = ['info', '--output=json', '--backing-chain', '-U'];
  if (options.format) args.push('-f', options.format);
  return parseQemuImgInfo(await runTool('qemu-img', [...args, path]));
}

/** `qemu-img convert -p` prints `(12.34/100%)`; reports the percent as it goes. */
export async function qemuImgConvert(
  source: { path: string; format: string },
  target: { path: string; format: string; existing?: boolean },
  onPercent: (percent: number) => void,
  options: RunOptions = {},
): Promise<void> {
  const args = ['convert', '-p', '-f', source.format, '-O', target.format];
  if (target.existing) args.push('-n');
  await runTool('qemu-img', [...args, source.path, target.path], {
    ...options,
    onOutput: (text) => {
      const matches = [...text.matchAll(/\(([0-9.]+)\/100%\)/g)];
      const last = matches.at(-1);
      if (last) onPercent(Number(last[1]));
    },
  });
}

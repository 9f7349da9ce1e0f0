import { spawn } from 'node:child_process';
import { VirtError } from '@virtbus/api-contract';

export interface RunOptions {
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
  /** Called with each stderr/stdout chunk as it arrives (progress parsing). */
  onOutput?: (text: string) => void;
}

const oneLine = (text: string) => text.replace(/\s+/g, ' ').trim();

/** Runs a storage tool and returns its stdout; a non-zero exit becomes OPERATION_FAILED carrying stderr. */
export function runTool(command: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(new VirtError('OPERATION_FAILED', `${command} cancelled`));
      return;
    }
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env, signal: options.signal });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      stdout += text;
      options.onOutput?.(text);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    child.once('error', (error) => {
      const cancelled = options.signal?.aborted;
      reject(new VirtError('OPERATION_FAILED', cancelled ? `${command} cancelled` : `${command} failed to run: ${error.message}`, { cause: error }));
    });
    child.once('close', (code) => {
      if (code === 0) resolve(stdout);
      // One line: the message travels in a NATS header, where a newline is invalid.
      else reject(new VirtError('OPERATION_FAILED', `${command} ${args[0] ?? ''} failed (${code}): ${oneLine(stderr || stdout)}`));
    });
  });
}

import { VirtError } from '@virtbus/api-contract';
import { runTool, type RunOptions } from '../storage/run.js';

/** Where `ip netns add` puts its bind mounts; a node's network resources live in one of them when `--netns` is set. */
export const NETNS_DIR = '/run/netns';

const NETNS_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Rejects names that could escape NETNS_DIR or be taken for options. */
export function assertNetnsName(name: string): void {
  if (!NETNS_NAME.test(name) || name === '.' || name === '..') {
    throw new VirtError('INVALID_ARG', `invalid network namespace name ${JSON.stringify(name)}`);
  }
}

export function netnsPath(name: string): string {
  assertNetnsName(name);
  return `${NETNS_DIR}/${name}`;
}

/** A command as argv; `undefined` netns means the agent's own namespace. */
export interface NetnsCommand {
  command: string;
  args: string[];
}

/** Wraps a command so it runs in the named network namespace (nsenter keeps the mount namespace, unlike `ip netns exec`). */
export function inNetns(netns: string | undefined, command: string, args: readonly string[]): NetnsCommand {
  if (!netns) return { command, args: [...args] };
  return { command: 'nsenter', args: [`--net=${netnsPath(netns)}`, '--', command, ...args] };
}

/** Runs a tool (ip, nft, …) in the namespace and returns its stdout; failures are OPERATION_FAILED with stderr. */
export function runInNetns(netns: string | undefined, command: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  const wrapped = inNetns(netns, command, args);
  return runTool(wrapped.command, wrapped.args, options);
}

import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';

/** Running = present and not a zombie (a slow PID 1 may take a second to reap what we killed). */
export function processRunning(pid: number): boolean {
  try {
    return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Live processes whose command line mentions `needle` (zombies have none). */
export function processesMentioning(needle: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync('/proc').filter((name) => /^\d+$/.test(name)).map(Number)) {
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmdline.includes(needle) && processRunning(entry)) found.push(`${entry}: ${cmdline.trim()}`);
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

/** Why this kernel cannot give a test network namespaces, or undefined when it can. */
export function netnsUnsupportedReason(): string | undefined {
  return existsSync('/proc/self/ns/net') ? undefined : 'this kernel has no network namespaces (/proc/self/ns/net is absent)';
}

/** Creates a network namespace for a test (loopback up unless asked otherwise). */
export function addTestNetns(name: string, options: { loopbackUp?: boolean } = {}): void {
  execFileSync('ip', ['netns', 'add', name]);
  if (options.loopbackUp ?? true) execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
}

/**
 * Kills what still runs in a test's namespace (a dnsmasq or QEMU the test started), waits (bounded) until none of it
 * runs, then removes the namespace; never throws. Returns the processes that still ran after the wait.
 */
export function removeTestNetns(name: string): number[] {
  let pids: number[] = [];
  try {
    pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    // never created
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + 5_000;
  let left = pids.filter(processRunning);
  while (left.length > 0 && Date.now() < deadline) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    left = left.filter(processRunning);
  }
  try {
    execFileSync('ip', ['netns', 'del', name]);
  } catch {
    // never created
  }
  return left;
}

/** SIGKILLs live QEMU processes whose command line mentions `needle` (what a failed step of a run left behind). */
export function killQemusMentioning(needle: string): void {
  for (const found of processesMentioning(needle)) {
    if (!found.includes('qemu-system')) continue;
    try {
      process.kill(Number(found.split(':')[0]), 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
}

import { execFileSync } from 'node:child_process';

/** Creates a network namespace for a test (loopback up unless asked otherwise). */
export function addTestNetns(name: string, options: { loopbackUp?: boolean } = {}): void {
  execFileSync('ip', ['netns', 'add', name]);
  if (options.loopbackUp ?? true) execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
}

/** Kills what still runs in a test's namespace (a dnsmasq or QEMU the test started), then removes it; never throws. */
export function removeTestNetns(name: string): void {
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
  try {
    execFileSync('ip', ['netns', 'del', name]);
  } catch {
    // never created
  }
}

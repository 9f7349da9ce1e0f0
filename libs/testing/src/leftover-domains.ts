import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** File names a hypervisor process's pid is kept in under a domain's run dir (QEMU's -pidfile). */
const PID_FILES = new Set(['qemu.pid']);

async function pidFilesUnder(dir: string, depth: number): Promise<string[]> {
  if (depth < 0) return [];
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const found: string[] = [];
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isFile() && PID_FILES.has(entry.name)) found.push(path);
    else if (entry.isDirectory()) found.push(...(await pidFilesUnder(path, depth - 1)));
  }
  return found;
}

/** Running, not a zombie waiting for its (slow) reaper. */
async function running(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

/**
 * Kills the domain processes whose pid file lies under `dir` (domains outlive their agent, so a test that failed midway
 * leaves them running); a pid counts only while its command line still names that pid file, so a reused pid is spared.
 */
export async function endDomainsUnder(dir: string): Promise<number[]> {
  const ended: number[] = [];
  for (const pidFile of await pidFilesUnder(dir, 6)) {
    const pid = Number.parseInt(await readFile(pidFile, 'utf8').catch(() => ''), 10);
    if (!Number.isInteger(pid) || pid <= 1) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline.split('\0').includes(pidFile)) continue;
    process.kill(pid, 'SIGKILL');
    ended.push(pid);
  }
  for (let waited = 0; waited < 5_000; waited += 20) {
    if (!(await Promise.all(ended.map(running))).includes(true)) break;
    await sleep(20);
  }
  return ended;
}

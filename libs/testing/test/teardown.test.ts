import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { hasBinaryOrSkip, tearDown } from '../src/index.js';

const QEMU = hasBinaryOrSkip('qemu-system-x86_64');
// a killed daemon is a zombie until PID 1 reaps it: only a process not yet killed counts
const alive = async (pid: number): Promise<boolean> => / [RSDT] /.test(await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => ''));

describe.skipIf(!QEMU)('tearDown of a directory', () => {
  it('ends a QEMU whose pid file lies inside it (a domain a failed test left running), then removes it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'virtbus-teardown-'));
    const runDir = join(dir, 'state', 'drivers', 'qemu', 'dom');
    await mkdir(runDir, { recursive: true });
    const pidFile = join(runDir, 'qemu.pid');
    await promisify(execFile)('qemu-system-x86_64', ['-machine', 'none', '-nodefaults', '-display', 'none', '-S', '-daemonize', '-pidfile', pidFile]);
    const pid = Number.parseInt(await readFile(pidFile, 'utf8'), 10);
    expect(await alive(pid)).toBe(true);
    await tearDown(dir);
    expect(await alive(pid)).toBe(false);
  });
});

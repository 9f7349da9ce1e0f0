import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { isProcessAlive, parseProcStat, readProcStatSync, waitForProcessExit } from './process.js';

describe('parseProcStat', () => {
  it('reads state, cpu ticks, start time and a zombie exit code, even with a comm full of spaces and parentheses', () => {
    const tail = Array.from({ length: 50 }, (_, index) => String(index + 4));
    tail[14 - 4] = '120'; // utime
    tail[15 - 4] = '30'; // stime
    tail[22 - 4] = '987654'; // starttime
    tail[52 - 4] = '9'; // exit_code: killed by SIGKILL
    const stat = parseProcStat(`1234 (qemu (x) y) Z ${tail.join(' ')}`);
    expect(stat).toEqual({ state: 'Z', utimeTicks: 120, stimeTicks: 30, startTime: 987654, exitCode: 9 });
  });
});

describe('process identity', () => {
  it('knows a live process by pid + start time, and a different start time as someone else', () => {
    const own = readProcStatSync(process.pid);
    expect(own).toBeDefined();
    expect(isProcessAlive(process.pid, own!.startTime)).toBe(true);
    expect(isProcessAlive(process.pid, own!.startTime + 1)).toBe(false);
  });

  it('sees a process exit', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    await new Promise((resolve) => child.once('spawn', resolve));
    const startTime = readProcStatSync(child.pid!)!.startTime;
    expect(isProcessAlive(child.pid!, startTime)).toBe(true);
    child.kill('SIGKILL');
    await expect(waitForProcessExit(child.pid!, startTime, 5_000)).resolves.toBe(true);
  });
});

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { VirtError, type DomainConfig } from '@virtbus/api-contract';
import { describe, expect, it } from 'vitest';
import type { DomainRecord, RunState } from '../driver.js';
import { TestDriver } from './test-driver.js';
import { testDomainConfig } from '@virtbus/testing';

const config: DomainConfig = testDomainConfig({
  name: 'vm1',
  uuid: '6f0f5c0e-8a0e-4a4e-9a59-2a5c6ad2f001',
  driver: 'test',
  vcpus: 2,
});
const record = (state: RunState): DomainRecord => ({ config, state: state.state, reason: state.reason });

/** A driver context on a fresh state dir that records nothing. */
async function quietContext() {
  const stateDir = await mkdtemp(join(tmpdir(), 'virtbus-test-driver-'));
  return { stateDir, context: { node: 'n', stateDir, logger: pino({ level: 'silent' }), observedState: () => undefined, saveRuntime: async () => undefined } };
}

describe('TestDriver', () => {
  it("follows libvirt's state machine and refuses impossible transitions", async () => {
    const driver = new TestDriver();
    let state: RunState = { state: 'shutoff', reason: 'unknown' };
    await expect(driver.suspend(record(state))).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    state = await driver.start(record(state), { paused: false });
    expect(state).toEqual({ state: 'running', reason: 'booted' });
    await expect(driver.start(record(state), { paused: false })).rejects.toBeInstanceOf(VirtError);
    state = await driver.suspend(record(state));
    expect(state).toEqual({ state: 'paused', reason: 'user' });
    state = await driver.resume(record(state));
    expect(state).toEqual({ state: 'running', reason: 'unpaused' });
    state = await driver.destroy(record(state));
    expect(state).toEqual({ state: 'shutoff', reason: 'destroyed' });
  });

  it('echoes console input and keeps history', async () => {
    const driver = new TestDriver();
    const running = await driver.start(record({ state: 'shutoff', reason: 'unknown' }), { paused: false });
    const session = await driver.openConsole(record(running));
    expect(session.history.toString()).toContain('GUEST-READY');
    const received: string[] = [];
    session.onData((chunk) => received.push(chunk.toString()));
    session.write(Buffer.from('echo hi\n'));
    expect(received.join('')).toBe('echo hi\r\n');
  });

  it('reports stats whose CPU time grows while the domain runs', async () => {
    const driver = new TestDriver();
    const running = await driver.start(record({ state: 'shutoff', reason: 'unknown' }), { paused: false });
    const first = await driver.domainStats(record(running), { deadlineMs: 100 });
    await sleep(30);
    const second = await driver.domainStats(record(running), { deadlineMs: 100 });
    expect(second.cpu!.timeNs).toBeGreaterThan(first.cpu!.timeNs);
    expect(second.vcpu?.list).toHaveLength(2);
    expect(second.memory?.maximumBytes).toBe(64 * 1024 * 1024);
  });

  it('a restarted driver finds its guests as they really are, whatever the agent recorded', async () => {
    const { stateDir, context } = await quietContext();
    try {
      const first = new TestDriver();
      await first.init(context);
      const running = await first.start(record({ state: 'shutoff', reason: 'unknown' }), { paused: false });
      const restarted = async () => {
        const driver = new TestDriver();
        await driver.init(context);
        return driver;
      };
      expect(await (await restarted()).adopt(record(running))).toEqual(running);
      const paused = await first.suspend(record(running));
      // the agent could not record the pause: its record still says running
      expect(await (await restarted()).adopt(record(running))).toEqual({ state: 'paused', reason: 'unknown' });
      await first.destroy(record(paused));
      expect(await (await restarted()).adopt(record(paused))).toEqual({ state: 'shutoff', reason: 'unknown' });
      expect(await (await restarted()).adopt(record({ state: 'shutoff', reason: 'destroyed' }))).toEqual({ state: 'shutoff', reason: 'destroyed' });
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it('takes guests of a state dir from before the marks as recorded', async () => {
    const { stateDir, context } = await quietContext();
    try {
      const driver = new TestDriver();
      await driver.init(context);
      const running: RunState = { state: 'running', reason: 'booted' };
      expect(await driver.adopt(record(running))).toEqual(running);
      const next = new TestDriver();
      await next.init(context);
      expect(await next.adopt(record(running))).toEqual(running);
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});

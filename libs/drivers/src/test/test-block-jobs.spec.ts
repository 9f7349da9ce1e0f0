import { describe, expect, it } from 'vitest';
import type { DomainEventDetails } from '@virtbus/api-contract';
import { testDomainConfig } from '@virtbus/testing';
import pino from 'pino';
import type { DomainRecord } from '../driver.js';
import { TestBlockJobs } from './test-block-jobs.js';

const domain: DomainRecord = { config: testDomainConfig({ name: 'bj', uuid: '6f0f5c0e-8a0e-4a4e-9a59-2a5c6ad2f0b1', driver: 'test' }), state: 'running', reason: 'booted' };

function jobsWithEvents() {
  const events: string[] = [];
  const jobs = new TestBlockJobs();
  jobs.init({
    node: 'n',
    stateDir: '/nonexistent',
    logger: pino({ level: 'silent' }),
    observedState: () => undefined,
    saveRuntime: async () => undefined,
    domainEvent: (_uuid, event, details?: DomainEventDetails) => void events.push(`${event}:${details?.jobType}:${details?.status}`),
  });
  return { jobs, events };
}

const watch = (controller = new AbortController(), seen: number[] = []) => ({ signal: controller.signal, onProgress: (done: number) => void seen.push(done) });

describe('TestBlockJobs', () => {
  it('runs a pull to completion with progress and a COMPLETED event', async () => {
    const { jobs, events } = jobsWithEvents();
    const seen: number[] = [];
    const run = await jobs.start(domain, 'vdb', { kind: 'pull' }, watch(undefined, seen));
    expect(await jobs.info(domain, 'vdb')).toMatchObject({ type: 'PULL', ready: false });
    await expect(jobs.start(domain, 'vdb', { kind: 'pull' }, watch())).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    expect(await run.finished).toEqual({});
    expect(seen.at(-1)).toBe(64 * 1024 * 1024);
    expect(events).toEqual(['BLOCK_JOB:PULL:COMPLETED']);
    expect(await jobs.info(domain, 'vdb')).toBeUndefined();
  });

  it('pivots a copy once ready, or waits for blockjob pivot, and moves the disk to the destination', async () => {
    const { jobs, events } = jobsWithEvents();
    const pivoted = await jobs.start(domain, 'vdb', { kind: 'copy', destination: '/images/copy.qcow2', pivot: true }, watch());
    expect(await pivoted.finished).toEqual({ activePath: '/images/copy.qcow2' });
    const held = await jobs.start(domain, 'vdc', { kind: 'copy', destination: '/images/held.qcow2' }, watch());
    await expect(jobs.abort(domain, 'vdc', true)).rejects.toMatchObject({ code: 'OPERATION_INVALID' });
    for (;;) if ((await jobs.info(domain, 'vdc'))?.ready) break; else await new Promise((resolve) => setTimeout(resolve, 20));
    await jobs.abort(domain, 'vdc', true);
    expect(await held.finished).toEqual({ activePath: '/images/held.qcow2' });
    expect(events).toEqual(['BLOCK_JOB:COPY:READY', 'BLOCK_JOB:COPY:COMPLETED', 'BLOCK_JOB:COPY:READY', 'BLOCK_JOB:COPY:COMPLETED']);
  });

  it('cancels on the signal with a CANCELED event', async () => {
    const { jobs, events } = jobsWithEvents();
    const controller = new AbortController();
    const run = await jobs.start(domain, 'vdb', { kind: 'copy', destination: '/images/slow.qcow2', bandwidth: 1024 }, watch(controller));
    controller.abort();
    await expect(run.finished).rejects.toMatchObject({ code: 'OPERATION_FAILED' });
    expect(events).toEqual(['BLOCK_JOB:COPY:CANCELED']);
  });
});

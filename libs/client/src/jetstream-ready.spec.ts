import { JetStreamApiError } from '@nats-io/jetstream';
import { jserrors } from '@nats-io/jetstream/internal';
import { TimeoutError } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { JetStreamNotReadyError, retryDelayMs, transientJetStreamWait, untilJetStreamReady } from './jetstream-ready.js';

const apiError = (code: number, err_code: number, description: string) => new JetStreamApiError({ code, err_code, description });

describe('transientJetStreamWait', () => {
  it('retries what a forming cluster answers', () => {
    expect(transientJetStreamWait(apiError(500, 10005, 'no suitable peers for placement'))).toMatch(/enough JetStream servers/);
    expect(transientJetStreamWait(apiError(503, 10008, 'JetStream system temporarily unavailable'))).toMatch(/elect a meta leader/);
    expect(transientJetStreamWait(new jserrors.JetStreamNotEnabled('jetstream is not enabled'))).toMatch(/elect a meta leader/);
    expect(transientJetStreamWait(new TimeoutError())).toMatch(/timeout/);
    expect(transientJetStreamWait(apiError(500, 10009, 'JetStream cluster can not handle request'))).toBeDefined();
    const publish = new jserrors.JetStreamNotEnabled('jetstream is not enabled', { cause: new Error("no responders: '$KV.virt_nodes.n3'") });
    expect(transientJetStreamWait(publish)).toBe('waiting for the stream to elect a leader');
  });

  it('does not retry permanent errors', () => {
    expect(transientJetStreamWait(apiError(400, 10058, 'stream name already in use with a different configuration'))).toBeUndefined();
    expect(transientJetStreamWait(new Error('Permissions Violation for Publish to "$JS.API.STREAM.CREATE.VIRT_EVENTS"'))).toBeUndefined();
    expect(transientJetStreamWait(apiError(500, 10074, 'replicas > 1 not supported in non-clustered mode'))).toBeUndefined();
    expect(transientJetStreamWait('no suitable peers')).toBeUndefined();
  });
});

describe('retryDelayMs', () => {
  it('doubles up to the cap and jitters within the upper half', () => {
    expect(retryDelayMs(0, 100, 2000, () => 0)).toBe(50);
    expect(retryDelayMs(0, 100, 2000, () => 1)).toBe(100);
    expect(retryDelayMs(3, 100, 2000, () => 1)).toBe(800);
    expect(retryDelayMs(50, 100, 2000, () => 0.5)).toBe(1500);
  });
});

describe('untilJetStreamReady', () => {
  it('retries transient errors, logs what it waits for once per reason, and returns the result', async () => {
    const failures = [apiError(503, 10008, 'JetStream system temporarily unavailable'), apiError(503, 10008, 'JetStream system temporarily unavailable'), apiError(500, 10005, 'no suitable peers for placement')];
    const logged: string[] = [];
    let calls = 0;
    const result = await untilJetStreamReady(
      'stream X',
      async () => {
        calls++;
        const failure = failures.shift();
        if (failure) throw failure;
        return 'created';
      },
      { initialDelayMs: 1, maxDelayMs: 2, logger: { info: (_details, message) => logged.push(message) } },
    );
    expect(result).toBe('created');
    expect(calls).toBe(4);
    expect(logged).toEqual([
      'waiting for the JetStream cluster to elect a meta leader…',
      'waiting for enough JetStream servers to join the cluster to place the replicas…',
      'JetStream ready: stream X',
    ]);
  });

  it('throws a permanent error at once', async () => {
    let calls = 0;
    const permanent = apiError(400, 10058, 'stream name already in use with a different configuration');
    await expect(
      untilJetStreamReady('stream X', async () => {
        calls++;
        throw permanent;
      }),
    ).rejects.toBe(permanent);
    expect(calls).toBe(1);
  });

  it('gives up at the deadline with the last error as cause', async () => {
    const last = apiError(500, 10005, 'no suitable peers for placement');
    const error = await untilJetStreamReady(
      'bucket virt_nodes',
      async () => {
        throw last;
      },
      { deadlineMs: 30, initialDelayMs: 5, maxDelayMs: 10 },
    ).catch((failure: unknown) => failure);
    expect(error).toBeInstanceOf(JetStreamNotReadyError);
    expect((error as Error).message).toMatch(/^bucket virt_nodes: JetStream not ready after \d+ s \(waiting for enough JetStream servers.*no suitable peers for placement\)$/);
    expect((error as Error).cause).toBe(last);
  });
});

import { VirtError } from '@virtbus/api-contract';
import { describe, expect, it } from 'vitest';
import { configFromArgs } from './config.js';

const base = ['--node', 'n1', '--nats', 'nats://127.0.0.1:4222,nats://127.0.0.1:4223', '--state-dir', '/tmp/virtbus-config-spec'];

describe('agent fleet options', () => {
  it('takes several servers, stream replicas and the heartbeat interval', () => {
    const config = configFromArgs([...base, '--stream-replicas', '3', '--heartbeat-interval', '2'], {});
    expect(config).toMatchObject({ streamReplicas: 3, heartbeatIntervalMs: 2000, nats: { servers: ['nats://127.0.0.1:4222', 'nats://127.0.0.1:4223'] } });
  });

  it('leaves the replicas to the server (3 on a cluster) and beats every 5 s by default', () => {
    const config = configFromArgs(base, {});
    expect(config).not.toHaveProperty('streamReplicas');
    expect(config).toMatchObject({ heartbeatIntervalMs: 5000 });
    expect(configFromArgs(base, { VIRTBUS_STREAM_REPLICAS: '1' })).toMatchObject({ streamReplicas: 1 });
  });

  it('refuses replicas outside 1..5', () => {
    for (const bad of ['0', '6', '2.5', 'three']) expect(() => configFromArgs([...base, '--stream-replicas', bad], {}), bad).toThrow(VirtError);
  });
});

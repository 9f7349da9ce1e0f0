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

describe('agent listeners off loopback', () => {
  const local = ['--node', 'n1', '--state-dir', '/tmp/virtbus-config-spec'];

  it('refuses a metrics address that is not loopback (no TLS there) unless forced', () => {
    expect(() => configFromArgs([...local, '--metrics-address', '0.0.0.0:9177'], {})).toThrow(/refusing to serve \/metrics on 0\.0\.0\.0 without TLS.*--allow-insecure-listen/);
    expect(() => configFromArgs(local, { VIRTBUS_METRICS_ADDRESS: '[::]:9177' })).toThrow(/refusing to serve \/metrics on ::/);
    expect(configFromArgs([...local, '--metrics-address', '0.0.0.0:9177', '--allow-insecure-listen'], {})).toMatchObject({ monitoring: { metricsAddress: '0.0.0.0:9177' } });
    expect(configFromArgs([...local, '--metrics-address', '10.0.0.5:9177'], { VIRTBUS_ALLOW_INSECURE_LISTEN: '1' })).toMatchObject({ monitoring: { metricsAddress: '10.0.0.5:9177' } });
    expect(configFromArgs([...local, '--metrics-address', 'localhost:0'], {})).toMatchObject({ monitoring: { metricsAddress: 'localhost:0' } });
    expect(configFromArgs([...local, '--metrics-address', 'off'], {})).toMatchObject({ monitoring: { metricsAddress: 'off' } });
  });

  it('refuses a migration address that is not loopback without migration TLS certificates unless forced', () => {
    expect(() => configFromArgs([...local, '--migration-address', '0.0.0.0'], {})).toThrow(/refusing to listen for migrations on 0\.0\.0\.0 without TLS.*--migration-tls-dir.*--allow-insecure-listen/);
    expect(configFromArgs([...local, '--migration-address', '10.0.0.5', '--migration-tls-dir', '/etc/virtbus/migration'], {})).toMatchObject({
      migration: { listenHost: '10.0.0.5', tlsDir: '/etc/virtbus/migration' },
    });
    expect(configFromArgs([...local, '--migration-address', '10.0.0.5', '--allow-insecure-listen'], {})).toMatchObject({ migration: { listenHost: '10.0.0.5' } });
    expect(configFromArgs(local, {})).toMatchObject({ migration: { listenHost: '127.0.0.1' }, monitoring: { metricsAddress: '127.0.0.1:9177' } });
  });
});

describe('agent libvirt driver option', () => {
  it('loads the libvirt driver only with --libvirt-uri (or VIRTBUS_LIBVIRT_URI), with that URI', () => {
    expect(configFromArgs(base, {})).toMatchObject({ drivers: ['test', 'qemu', 'lxc'] });
    expect(configFromArgs([...base, '--libvirt-uri', 'xen:///system'], {})).toMatchObject({
      drivers: ['test', 'qemu', 'lxc', 'libvirt'],
      driverOptions: { libvirt: { uri: 'xen:///system' } },
    });
    expect(configFromArgs([...base, '--drivers', 'libvirt'], { VIRTBUS_LIBVIRT_URI: 'test:///default' })).toMatchObject({ drivers: ['libvirt'], driverOptions: { libvirt: { uri: 'test:///default' } } });
    expect(configFromArgs([...base, '--libvirt-uri', 'qemu:///system', '--libvirt-peer-uri', 'qemu+tls://h1/system'], {})).toMatchObject({ driverOptions: { libvirt: { uri: 'qemu:///system', peerUri: 'qemu+tls://h1/system' } } });
  });

  it('refuses driver libvirt without a URI', () => {
    expect(() => configFromArgs([...base, '--drivers', 'test,libvirt'], {})).toThrow(/needs --libvirt-uri/);
  });
});

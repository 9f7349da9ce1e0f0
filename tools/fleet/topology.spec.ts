import { describe, expect, it } from 'vitest';
import { fleetPlan } from './topology.js';

describe('fleetPlan', () => {
  it('gives each host and the gateway its own namespace, address and sockets under the fleet directory', () => {
    const plan = fleetPlan({ prefix: 'vbt1', dir: '/tmp/f' });
    expect(plan.switchNetns).toBe('vbt1-sw');
    expect(plan.hosts.map((host) => [host.node, host.netns, host.ip])).toEqual([
      ['h1', 'vbt1-h1', '10.213.0.1'],
      ['h2', 'vbt1-h2', '10.213.0.2'],
      ['h3', 'vbt1-h3', '10.213.0.3'],
    ]);
    expect(plan.gateway).toEqual({ netns: 'vbt1-gw', ip: '10.213.0.100', httpSocket: '/tmp/f/sockets/gateway-http.sock' });
    expect(plan.hosts[0]!.natsSocket).toBe('/tmp/f/sockets/h1-nats.sock');
    expect(plan.drivers).toBe('test,qemu');
  });

  it('refuses a prefix that is not a short lower-case token (it names namespaces)', () => {
    for (const prefix of ['', 'Vb', 'vb-1', 'averyveryverylongprefix', '1vb']) expect(() => fleetPlan({ prefix, dir: '/tmp/f' }), prefix).toThrow(/fleet prefix/);
  });
});

import { describe, expect, it } from 'vitest';
import { renderNatsServerConfig } from './nats-config.js';
import { agentPermissions } from './nats-permissions.js';

describe('renderNatsServerConfig', () => {
  const tls = { cert: '/s/server.crt', key: '/s/server.key', ca: '/s/ca.crt' };
  const users = [{ user: 'CN=agent-a,OU=agent,O=virtbus', permissions: agentPermissions('a', 'agent-a') }];

  it('maps client certificates to users and quotes $-subjects', () => {
    const text = renderNatsServerConfig({ tls, users, listen: '127.0.0.1:4222', jetstreamStoreDir: '/var/js' });
    expect(text).toContain('verify_and_map: true');
    expect(text).toContain('"user": "CN=agent-a,OU=agent,O=virtbus"');
    expect(text).toContain('"$JS.API.STREAM.CREATE.VIRT_EVENTS"');
    expect(text).toContain('listen: "127.0.0.1:4222"');
    expect(text).toContain('store_dir: "/var/js"');
    expect(text).not.toContain('cluster {');
  });

  it('leaves listen and jetstream to a harness when not given', () => {
    const text = renderNatsServerConfig({ tls, users });
    expect(text).not.toMatch(/^listen/m);
    expect(text).not.toContain('jetstream');
  });

  it('writes a TLS-verified cluster block with routes', () => {
    const text = renderNatsServerConfig({ tls, users, serverName: 'nats-h1', cluster: { name: 'virtbus', listen: '0.0.0.0:6222', routes: ['nats-route://h2:6222'] } });
    expect(text).toContain('server_name: "nats-h1"');
    expect(text).toMatch(/cluster \{[\s\S]*verify: true[\s\S]*"nats-route:\/\/h2:6222"/);
  });
});

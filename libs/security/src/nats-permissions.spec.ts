import { describe, expect, it } from 'vitest';
import { OperationNames, Operations, Subjects, VirtError } from '@virtbus/api-contract';
import {
  adminPermissions,
  agentPermissions,
  gatewayPermissions,
  operatorPermissions,
  readOnlyPermissions,
  type NatsPermissions,
} from './nats-permissions.js';

/** nats subject matching: `*` one token, `>` the rest. */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}

function may(perms: NatsPermissions, kind: 'publish' | 'subscribe', subject: string): boolean {
  const block = perms[kind];
  return block.allow.some((p) => matches(p, subject)) && !(block.deny ?? []).some((p) => matches(p, subject));
}

describe('agentPermissions', () => {
  const a = agentPermissions('a', 'agent-a');

  it('serves only its own request subjects', () => {
    expect(may(a, 'subscribe', 'virt.v1.a.ro.domain.list')).toBe(true);
    expect(may(a, 'subscribe', 'virt.v1.a.rw.domain.state')).toBe(true);
    expect(may(a, 'subscribe', 'virt.v1.b.rw.domain.state')).toBe(false);
    expect(may(a, 'subscribe', 'virt.v1.*.rw.>')).toBe(false);
    expect(a.allow_responses).toBe(true);
  });

  it('publishes events, stats and console output of its own node only', () => {
    expect(may(a, 'publish', 'virt.v1.a.events.domain.u1.started')).toBe(true);
    expect(may(a, 'publish', 'virt.v1.a.stats')).toBe(true);
    expect(may(a, 'publish', 'virt.v1.a.console.u1.out')).toBe(true);
    expect(may(a, 'publish', 'virt.v1.b.events.domain.u1.started')).toBe(false);
    expect(may(a, 'publish', 'virt.v1.b.stats')).toBe(false);
    expect(may(a, 'publish', 'virt.v1.a.rw.domain.state')).toBe(false);
  });

  it('writes only its own node record and may create but not update the streams', () => {
    expect(may(a, 'publish', '$KV.virt_nodes.a')).toBe(true);
    expect(may(a, 'publish', '$KV.virt_nodes.b')).toBe(false);
    expect(may(a, 'publish', '$JS.API.STREAM.CREATE.VIRT_EVENTS')).toBe(true);
    expect(may(a, 'publish', '$JS.API.STREAM.CREATE.KV_virt_nodes')).toBe(true);
    expect(may(a, 'publish', '$JS.API.STREAM.UPDATE.VIRT_EVENTS')).toBe(false);
    expect(may(a, 'publish', '$JS.API.STREAM.DELETE.VIRT_EVENTS')).toBe(false);
    const noCreate = agentPermissions('a', 'agent-a', { createStreams: false });
    expect(may(noCreate, 'publish', '$JS.API.STREAM.CREATE.VIRT_EVENTS')).toBe(false);
  });

  it('answers service discovery for virt-agent and reads replies only on its own inbox', () => {
    for (const s of ['$SRV.PING', '$SRV.INFO.virt-agent', '$SRV.STATS.virt-agent.ID123']) expect(may(a, 'subscribe', s)).toBe(true);
    expect(may(a, 'subscribe', '$SRV.PING.other-service')).toBe(false);
    expect(may(a, 'subscribe', '_INBOX.agent-a.abc.def')).toBe(true);
    expect(may(a, 'subscribe', '_INBOX.gateway.abc')).toBe(false);
  });

  it('asks other agents for migration and answers only its own peer subjects; clients cannot', () => {
    expect(may(a, 'publish', 'virt.v1.b.peer.migration.prepare')).toBe(true);
    expect(may(a, 'subscribe', 'virt.v1.a.peer.migration.prepare')).toBe(true);
    expect(may(a, 'subscribe', 'virt.v1.b.peer.migration.prepare')).toBe(false);
    expect(may(a, 'subscribe', 'virt.v1.*.peer.>')).toBe(false);
    expect(may(a, 'publish', 'virt.v1.b.rw.domain.state')).toBe(false);
    for (const client of [gatewayPermissions('gateway'), operatorPermissions('op'), readOnlyPermissions('ro')]) {
      expect(may(client, 'publish', 'virt.v1.b.peer.migration.prepare')).toBe(false);
    }
  });

  it('derives the peer verbs of the operation table: agents call them on other nodes and answer their own, users and the gateway never', () => {
    const peerVerbs = OperationNames.filter((name) => Operations[name].access === 'peer');
    expect(peerVerbs.length).toBeGreaterThan(0);
    for (const name of peerVerbs) {
      expect([name, may(a, 'publish', Subjects.request('b', 'peer', name))]).toEqual([name, true]);
      expect([name, may(a, 'subscribe', Subjects.request('a', 'peer', name)), may(a, 'subscribe', Subjects.request('b', 'peer', name))]).toEqual([name, true, false]);
      for (const client of [gatewayPermissions('gateway'), adminPermissions('adm'), operatorPermissions('op'), readOnlyPermissions('ro')]) {
        expect([name, may(client, 'publish', Subjects.request('b', 'peer', name))]).toEqual([name, false]);
      }
    }
  });

  it('never names another node', () => {
    const all = [...a.publish.allow, ...a.subscribe.allow];
    expect(all.filter((s) => s.includes('.b.') || s.endsWith('.b'))).toEqual([]);
  });

  it('rejects node names that are not one subject token', () => {
    expect(() => agentPermissions('a.>', 'agent-a')).toThrow(VirtError);
    expect(() => agentPermissions('*', 'agent-x')).toThrow(VirtError);
  });
});

describe('client identities', () => {
  it('the gateway sends read and write requests and reads events via consumers', () => {
    const g = gatewayPermissions('gateway');
    expect(may(g, 'publish', 'virt.v1.a.ro.domain.list')).toBe(true);
    expect(may(g, 'publish', 'virt.v1.b.rw.domain.state')).toBe(true);
    expect(may(g, 'publish', '$SRV.INFO.virt-agent')).toBe(true);
    expect(may(g, 'publish', '$JS.API.CONSUMER.CREATE.VIRT_EVENTS.c1.virt.v1.*.events.>')).toBe(true);
    expect(may(g, 'publish', '$JS.API.CONSUMER.MSG.NEXT.VIRT_EVENTS.c1')).toBe(true);
    expect(may(g, 'publish', '$JS.API.DIRECT.GET.KV_virt_nodes.$KV.virt_nodes.a')).toBe(true);
    expect(may(g, 'publish', 'virt.v1.a.events.domain.u1.started')).toBe(false);
    expect(may(g, 'publish', '$KV.virt_nodes.a')).toBe(false);
    expect(may(g, 'publish', '$JS.API.STREAM.DELETE.VIRT_EVENTS')).toBe(false);
    expect(may(g, 'subscribe', 'virt.v1.a.rw.domain.state')).toBe(false);
    expect(may(g, 'publish', 'virt.v1._audit.gateway')).toBe(true);
  });

  it('only the gateway publishes audit records and only admin reads them', () => {
    expect(may(agentPermissions('a', 'agent-a'), 'publish', 'virt.v1._audit.gateway')).toBe(false);
    expect(may(operatorPermissions('op'), 'publish', 'virt.v1._audit.gateway')).toBe(false);
    expect(may(readOnlyPermissions('ro'), 'subscribe', 'virt.v1._audit.gateway')).toBe(false);
    expect(may(operatorPermissions('op'), 'subscribe', 'virt.v1._audit.gateway')).toBe(false);
    expect(may(adminPermissions('admin'), 'subscribe', 'virt.v1._audit.gateway')).toBe(true);
  });

  it('read-only may send read verbs only, and no consumer API', () => {
    const r = readOnlyPermissions('readonly');
    expect(may(r, 'publish', 'virt.v1.a.ro.domain.list')).toBe(true);
    expect(may(r, 'publish', 'virt.v1.a.rw.domain.state')).toBe(false);
    expect(may(r, 'publish', '$JS.API.CONSUMER.CREATE.VIRT_EVENTS.c1.virt.v1.a.rw.>')).toBe(false);
    expect(may(r, 'subscribe', 'virt.v1.a.events.domain.u1.started')).toBe(true);
    expect(may(r, 'subscribe', 'virt.v1.a.ro.domain.list')).toBe(false);
  });

  it('node allow-lists narrow read-only and operator identities', () => {
    const r = readOnlyPermissions('ro-a', { nodes: ['a'] });
    expect(may(r, 'publish', 'virt.v1.a.ro.domain.list')).toBe(true);
    expect(may(r, 'publish', 'virt.v1.b.ro.domain.list')).toBe(false);
    expect(may(r, 'subscribe', 'virt.v1.b.events.domain.u1.started')).toBe(false);
    const o = operatorPermissions('op-a', { nodes: ['a'] });
    expect(may(o, 'publish', 'virt.v1.a.rw.domain.state')).toBe(true);
    expect(may(o, 'publish', 'virt.v1.b.rw.domain.state')).toBe(false);
  });

  it('admin manages the stream and the bucket', () => {
    const ad = adminPermissions('admin');
    expect(may(ad, 'publish', '$JS.API.STREAM.UPDATE.VIRT_EVENTS')).toBe(true);
    expect(may(ad, 'publish', '$KV.virt_nodes.b')).toBe(true);
    expect(may(ad, 'publish', 'virt.v1.b.rw.domain.define')).toBe(true);
  });
});

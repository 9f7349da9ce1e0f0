import { describe, expect, it } from 'vitest';
import { DomainsPost, DomainStates } from './domain.js';
import { ErrorStatus, VirtError } from './errors.js';
import { isActive, lifecycleChanges } from './lifecycle.js';
import { isNodeName, isObjectName } from './names.js';
import { Subjects } from './subjects.js';
import { compileValidator } from './validate.js';

describe('names', () => {
  it('accepts subject-safe node names only', () => {
    for (const good of ['n1', 'host-a', 'rack_7', 'A'.repeat(63)]) expect(isNodeName(good), good).toBe(true);
    for (const bad of ['', 'a.b', 'a*', '>', 'a b', '-lead', 'A'.repeat(64), 'a\n']) expect(isNodeName(bad), bad).toBe(false);
  });

  it('refuses object names that could escape a path or inject QEMU options', () => {
    for (const good of ['web-1', 'db.primary', 'a+b', 'x_y']) expect(isObjectName(good), good).toBe(true);
    for (const bad of ['..', 'a..b', 'a/b', '/abs', 'a,b', 'a=b', 'a b', 'nul\u0000', 'line\n', '.hidden', 'x'.repeat(65)]) {
      expect(isObjectName(bad), JSON.stringify(bad)).toBe(false);
    }
  });
});

describe('subjects', () => {
  it('keeps read and write verbs under different tokens', () => {
    expect(Subjects.request('n1', 'ro', 'domain.list')).toBe('virt.v1.n1.ro.domain.list');
    expect(Subjects.request('n1', 'rw', 'domain.state')).toBe('virt.v1.n1.rw.domain.state');
    // peer verbs from the table keep the wire subjects of the agents that served them by hand
    expect(Subjects.request('n1', 'peer', 'migration.prepare')).toBe(Subjects.peerRequest('n1', 'migration', 'prepare'));
    expect(Subjects.request('n1', 'peer', 'migration.prepare')).toBe('virt.v1.n1.peer.migration.prepare');
    expect(Subjects.nodeAccess('n1', 'peer')).toBe(Subjects.nodePeerRequests('n1'));
    expect(Subjects.allAccess('peer')).toBe(Subjects.allPeerRequests);
    expect(Subjects.domainEvent('n1', 'u-1', 'STARTED')).toBe('virt.v1.n1.events.domain.u-1.STARTED');
    expect(Subjects.domainEventFilter({ node: 'n1' })).toBe('virt.v1.n1.events.domain.*.*');
  });

  it('never builds a subject from an unsafe token', () => {
    expect(() => Subjects.request('a.b', 'ro', 'domain.list')).toThrow(VirtError);
    expect(() => Subjects.request('*', 'ro', 'domain.list')).toThrow(VirtError);
    expect(() => Subjects.domainEvent('n1', 'u.*', 'STARTED')).toThrow(VirtError);
  });
});

describe('isActive', () => {
  it('is libvirt virDomainObjIsActive by state: crashed, shutoff and nostate are inactive', () => {
    expect(DomainStates.filter(isActive)).toEqual(['running', 'blocked', 'paused', 'shutdown', 'pmsuspended']);
  });
});

describe('lifecycleChanges', () => {
  it("maps transitions to libvirt's event types and details", () => {
    expect(lifecycleChanges('shutoff', 'running', 'booted')).toEqual([{ type: 'STARTED', detail: 'BOOTED' }]);
    expect(lifecycleChanges('running', 'paused', 'user')).toEqual([{ type: 'SUSPENDED', detail: 'PAUSED' }]);
    expect(lifecycleChanges('paused', 'running', 'unpaused')).toEqual([{ type: 'RESUMED', detail: 'UNPAUSED' }]);
    expect(lifecycleChanges('running', 'shutoff', 'destroyed')).toEqual([{ type: 'STOPPED', detail: 'DESTROYED' }]);
    expect(lifecycleChanges('running', 'shutoff', 'crashed')).toEqual([{ type: 'STOPPED', detail: 'CRASHED' }]);
    expect(lifecycleChanges('shutoff', 'running', 'migrated')).toEqual([{ type: 'STARTED', detail: 'MIGRATED' }]);
    expect(lifecycleChanges('running', 'crashed', 'panicked')).toEqual([{ type: 'CRASHED', detail: 'PANICKED' }]);
  });

  it('reports a paused start as started then suspended, and nothing for no change', () => {
    expect(lifecycleChanges('shutoff', 'paused', 'user')).toEqual([
      { type: 'STARTED', detail: 'BOOTED' },
      { type: 'SUSPENDED', detail: 'PAUSED' },
    ]);
    expect(lifecycleChanges('running', 'running', 'unpaused')).toEqual([]);
  });

  it('reports both sides of a migration like libvirt', () => {
    expect(lifecycleChanges('shutoff', 'paused', 'migration')).toEqual([
      { type: 'STARTED', detail: 'MIGRATED' },
      { type: 'SUSPENDED', detail: 'MIGRATED' },
    ]);
    expect(lifecycleChanges('paused', 'running', 'migrated')).toEqual([{ type: 'RESUMED', detail: 'MIGRATED' }]);
    expect(lifecycleChanges('paused', 'running', 'postcopy')).toEqual([{ type: 'RESUMED', detail: 'POSTCOPY' }]);
    expect(lifecycleChanges('running', 'shutoff', 'migrated')).toEqual([{ type: 'STOPPED', detail: 'MIGRATED' }]);
  });
});

describe('validation and errors', () => {
  const validDefine = compileValidator(DomainsPost);

  it('names the field that is wrong', () => {
    expect(() => validDefine.parse({ name: 'x', driver: 'test', vcpus: 'two' })).toThrow(/\/vcpus must be integer/);
    expect(() => validDefine.parse({ name: 'x', driver: 'test', sneaky: 1 })).toThrow(/additional properties.*sneaky/);
    expect(validDefine.parse({ name: 'x', driver: 'test' })).toEqual({ name: 'x', driver: 'test' });
  });

  it('carries a stable code, its HTTP status and the cause', () => {
    const cause = new Error('socket closed');
    const error = new VirtError('AGENT_UNREACHABLE', 'node n1 is down', { cause });
    expect(error.toBody()).toEqual({ code: 'AGENT_UNREACHABLE', message: 'node n1 is down', status: 503 });
    expect(error.cause).toBe(cause);
    expect(ErrorStatus.NO_DOMAIN).toBe(404);
    expect(VirtError.fromBody(error.toBody())).toMatchObject({ code: 'AGENT_UNREACHABLE', status: 503 });
  });
});

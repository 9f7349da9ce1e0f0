import { describe, expect, it } from 'vitest';
import type { DomainState, FleetDomain } from '@virtbus/api-contract';
import { fleetQuery, fleetView, nextSort } from './fleet-view.js';

const row = (name: string, node: string, state: DomainState): FleetDomain => ({ node, uuid: `${node}-${name}`, name, driver: 'test', state, reason: 'unknown', stateChangedAt: '2026-01-01T00:00:00Z' });
const rows = [row('web', 'n1', 'running'), row('db', 'n2', 'shutoff'), row('api', 'n1', 'shutoff')];

describe('fleetView', () => {
  it('keeps the rows whose name, node or state contains the filter, in any case', () => {
    expect(fleetView(rows, 'N2').map((domain) => domain.name)).toEqual(['db']);
    expect(fleetView(rows, 'shut').map((domain) => domain.name)).toEqual(['db', 'api']);
    expect(fleetView(rows, '  ')).toBe(rows);
  });

  it('sorts by a column, the second press reversing it', () => {
    const once = nextSort(undefined, 'name');
    expect(fleetView(rows, '', once).map((domain) => domain.name)).toEqual(['api', 'db', 'web']);
    expect(fleetView(rows, '', nextSort(once, 'name')).map((domain) => domain.name)).toEqual(['web', 'db', 'api']);
    expect(nextSort({ column: 'name', descending: true }, 'state')).toEqual({ column: 'state', descending: false });
  });

  it("asks the gateway for the same filter and order (search, sort, order=desc)", () => {
    expect(fleetQuery('', undefined)).toBe('');
    expect(fleetQuery(' zz 1 ', { column: 'name', descending: true })).toBe('search=zz%201&sort=name&order=desc');
    expect(fleetQuery('', { column: 'state', descending: false })).toBe('sort=state');
  });
});

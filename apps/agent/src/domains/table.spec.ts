import { compareKeys } from '@virtbus/api-contract';
import { describe, expect, it } from 'vitest';
import type { StoredDomain } from './store.js';
import { DomainTable } from './table.js';

const stored = (name: string, uuid: string): StoredDomain =>
  ({ config: { name, uuid, driver: 'test', vcpus: 1, memory: 128, os: {}, disks: [], nics: [], console: { type: 'serial' }, autostart: false }, state: 'shutoff', reason: 'unknown', stateChangedAt: '2026-01-01T00:00:00.000Z' }) as StoredDomain;
const uuid = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

describe('DomainTable', () => {
  it('keeps the uuids in (name, uuid) code-unit order and the name index through sets, replacements, renames and deletes', () => {
    const table = new DomainTable();
    const expected = new Map<string, StoredDomain>();
    let seed = 7;
    const random = (bound: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % bound;
    const names = ['a', 'B', 'b', 'a-1', 'a-10', 'a-2', 'Z', 'é', 'zz', ''].filter(Boolean);
    for (let step = 0; step < 2000; step++) {
      const id = uuid(random(40));
      const action = random(3);
      if (action === 0) {
        table.delete(id);
        expected.delete(id);
      } else {
        const record = stored(`${names[random(names.length)]!}${random(5)}`, id);
        // names are unique on a node (define refuses a taken one)
        if ([...expected.values()].some((other) => other.config.name === record.config.name && other.config.uuid !== id)) continue;
        table.set(id, record);
        expected.set(id, record);
      }
      const order = [...expected.values()].sort((a, b) => compareKeys([a.config.name, a.config.uuid], [b.config.name, b.config.uuid])).map((record) => record.config.uuid);
      expect(table.orderedUuids()).toEqual(order);
      expect(table.size).toBe(expected.size);
    }
    for (const record of expected.values()) expect(table.findByName(record.config.name)?.config.name).toBe(record.config.name);
  });

  it('finds by name only what is there: a rename frees the old name, a delete frees the name', () => {
    const table = new DomainTable();
    table.set(uuid(1), stored('web', uuid(1)));
    expect(table.findByName('web')?.config.uuid).toBe(uuid(1));
    table.set(uuid(1), stored('web2', uuid(1)));
    expect(table.findByName('web')).toBeUndefined();
    expect(table.findByName('web2')?.config.uuid).toBe(uuid(1));
    expect(table.sorted().map((record) => record.config.name)).toEqual(['web2']);
    table.delete(uuid(1));
    expect(table.findByName('web2')).toBeUndefined();
    expect(table.orderedUuids()).toEqual([]);
    expect(table.delete(uuid(1))).toBe(false);
  });

  it('loads many records at once in the same order and with the same name index as one by one', () => {
    const records = Array.from({ length: 300 }, (_, index) => stored(`vm-${(index * 7919) % 300}`, uuid(index * 31 + 1)));
    const loaded = new DomainTable();
    loaded.load(records);
    const oneByOne = new DomainTable();
    for (const record of records) oneByOne.set(record.config.uuid, record);
    expect(loaded.orderedUuids()).toEqual(oneByOne.orderedUuids());
    expect(loaded.findByName('vm-17')?.config.uuid).toBe(oneByOne.findByName('vm-17')?.config.uuid);
    loaded.set(uuid(100_000), stored('vm-00', uuid(100_000)));
    oneByOne.set(uuid(100_000), stored('vm-00', uuid(100_000)));
    expect(loaded.orderedUuids()).toEqual(oneByOne.orderedUuids());
  });
});

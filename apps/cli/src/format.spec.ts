import { describe, expect, it } from 'vitest';
import { bytes, keyValues, table } from './format.js';

describe('CLI formatting', () => {
  it('aligns table columns', () => {
    expect(table(['Id', 'Name'], [['1', 'web'], ['22', 'db']])).toBe('Id   Name\n---------\n1    web\n22   db');
  });
  it('aligns key/value pairs and drops undefined', () => {
    expect(keyValues([['Name', 'web'], ['UUID', undefined], ['CPU(s)', 2]])).toBe('Name:   web\nCPU(s): 2');
  });
  it('prints binary units', () => {
    expect(bytes(512)).toBe('512 B');
    expect(bytes(256 * 1024 * 1024)).toBe('256.0 MiB');
  });
});
